package main

import (
	"flag"
	"fmt"

	"github.com/loupe-ml/loupe/preprocess"
	"github.com/loupe-ml/loupe/tensor"
)

// isImageFile says whether a file name is a PNG or JPEG picture's.
func isImageFile(name string) bool { return preprocess.IsImage(name) }

// readInput reads an input file: a picture, preprocessed (and also
// returned as shown, for drawing), or else a .npy array.
func readInput(path string, pre preprocess.Options) (x, shown *tensor.Tensor, err error) {
	return preprocess.ReadInput(path, pre)
}

// imageFlags adds the image preprocessing flags to fs; the function it
// returns reads them once fs is parsed. --preset sets the others'
// defaults; those given explicitly win over it.
func imageFlags(fs *flag.FlagSet) func() (preprocess.Options, error) {
	preset := fs.String("preset", "", "image inputs: a preprocessing preset, imagenet (--resize 256 --crop 224 and ImageNet's --mean and --std, as torchvision's models expect); the flags below override it")
	resize := fs.Int("resize", 0, "image inputs: resize the shorter side to this many pixels")
	crop := fs.Int("crop", 0, "image inputs: crop the center to this size")
	mean := fs.String("mean", "", "image inputs: per-channel means to subtract, e.g. 0.485,0.456,0.406")
	std := fs.String("std", "", "image inputs: per-channel standard deviations, e.g. 0.229,0.224,0.225")
	gray := fs.Bool("gray", false, "image inputs: one gray channel")
	return func() (preprocess.Options, error) {
		pre, err := preprocess.Preset(*preset)
		if err != nil {
			return pre, fmt.Errorf("--preset: %w", err)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if set["resize"] || *preset == "" {
			pre.Resize = *resize
		}
		if set["crop"] || *preset == "" {
			pre.CenterCrop = *crop
		}
		pre.Gray = *gray
		if set["mean"] || *preset == "" {
			if pre.Mean, err = floatList("--mean", *mean); err != nil {
				return pre, err
			}
		}
		if set["std"] || *preset == "" {
			pre.Std, err = floatList("--std", *std)
		}
		return pre, err
	}
}
