package viz

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"strings"
)

// Colormap maps a number in [0, 1] to a color, by linear interpolation
// between equally spaced stops.
type Colormap struct {
	Name  string
	stops []color.RGBA
}

// At returns the color of t, clamped to [0, 1]; NaN gives the first stop.
func (c Colormap) At(t float64) color.RGBA {
	if len(c.stops) == 0 {
		return color.RGBA{0, 0, 0, 255}
	}
	if !(t > 0) {
		return c.stops[0]
	}
	if t >= 1 {
		return c.stops[len(c.stops)-1]
	}
	p := t * float64(len(c.stops)-1)
	i := int(p)
	f := p - float64(i)
	a, b := c.stops[i], c.stops[i+1]
	lerp := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + (float64(y)-float64(x))*f)) }
	return color.RGBA{lerp(a.R, b.R), lerp(a.G, b.G), lerp(a.B, b.B), 255}
}

func hexStops(hex ...string) []color.RGBA {
	out := make([]color.RGBA, len(hex))
	for i, h := range hex {
		var r, g, b uint8
		fmt.Sscanf(h, "%02x%02x%02x", &r, &g, &b)
		out[i] = color.RGBA{r, g, b, 255}
	}
	return out
}

// colormaps are the named maps: ColorBrewer's sequential schemes (as
// matplotlib ships them) at nine stops, viridis at ten, and the diverging
// red-white-green map Captum uses for the sign "all".
var colormaps = map[string][]string{
	"Greens":   {"f7fcf5", "e5f5e0", "c7e9c0", "a1d99b", "74c476", "41ab5d", "238b45", "006d2c", "00441b"},
	"Reds":     {"fff5f0", "fee0d2", "fcbba1", "fc9272", "fb6a4a", "ef3b2c", "cb181d", "a50f15", "67000d"},
	"Blues":    {"f7fbff", "deebf7", "c6dbef", "9ecae1", "6baed6", "4292c6", "2171b5", "08519c", "08306b"},
	"Greys":    {"ffffff", "f0f0f0", "d9d9d9", "bdbdbd", "969696", "737373", "525252", "252525", "000000"},
	"Purples":  {"fcfbfd", "efedf5", "dadaeb", "bcbddc", "9e9ac8", "807dba", "6a51a3", "54278f", "3f007d"},
	"Oranges":  {"fff5eb", "fee6ce", "fdd0a2", "fdae6b", "fd8d3c", "f16913", "d94801", "a63603", "7f2704"},
	"viridis":  {"440154", "482878", "3e4989", "31688e", "26828e", "1f9e89", "35b779", "6ece58", "b5de2b", "fde725"},
	"gray":     {"000000", "ffffff"},
	"hot":      {"0b0000", "ff0000", "ffff00", "ffffff"},
	"bwr":      {"0000ff", "ffffff", "ff0000"},
	"coolwarm": {"3b4cc0", "7396f5", "b0cbfc", "dddddd", "f6bfa6", "ea7b60", "b40426"},
	"RdWhGn":   {"ff0000", "ffffff", "008000"},
}

// ColormapNames lists the color maps ColormapByName knows.
func ColormapNames() []string {
	names := make([]string, 0, len(colormaps))
	for n := range colormaps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ColormapByName returns a named color map (see ColormapNames); a name
// ending in "_r" gives the map reversed, as matplotlib's.
func ColormapByName(name string) (Colormap, error) {
	base, rev := strings.CutSuffix(name, "_r")
	hex, ok := colormaps[base]
	if !ok {
		return Colormap{}, fmt.Errorf("viz: unknown color map %q (known: %s)", name, strings.Join(ColormapNames(), ", "))
	}
	stops := hexStops(hex...)
	if rev {
		for i, j := 0, len(stops)-1; i < j; i, j = i+1, j-1 {
			stops[i], stops[j] = stops[j], stops[i]
		}
	}
	return Colormap{Name: name, stops: stops}, nil
}

// DefaultColormap returns Captum's color map for a sign: Blues for
// absolute values, Greens for positive, Reds for negative and red to white
// to green for all.
func DefaultColormap(s Sign) Colormap {
	name := map[Sign]string{AbsoluteValue: "Blues", Positive: "Greens", Negative: "Reds", All: "RdWhGn"}[s]
	c, _ := ColormapByName(name)
	return c
}

// position maps a normalized value (from Normalize, in [-1, 1]) to the
// color map's [0, 1] for a sign: the sign "all" spans -1 to 1, the others
// the magnitude from 0 to 1.
func position(v float64, s Sign) float64 {
	if s == All {
		return (v + 1) / 2
	}
	return math.Abs(v)
}
