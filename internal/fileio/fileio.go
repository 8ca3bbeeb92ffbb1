// Package fileio opens the files loupe reads whole (models, arrays,
// pictures) so that a careless or hostile path cannot hang or exhaust a
// reader: only regular files, checked before opening them (opening a FIFO
// without a writer blocks) and again on the open file (the path may have
// changed in between). A device such as /dev/zero, a FIFO or a folder is
// refused.
package fileio

import (
	"fmt"
	"os"
)

// OpenRegular opens path for reading if it is a regular file, and returns
// it with its information. Errors from the file system are returned as
// they are (os.IsNotExist works on them); anything else than a regular
// file is an error naming path.
func OpenRegular(path string) (*os.File, os.FileInfo, error) {
	if st, err := os.Stat(path); err != nil {
		return nil, nil, err
	} else if !st.Mode().IsRegular() {
		return nil, nil, notRegular(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, notRegular(path)
	}
	return f, st, nil
}

func notRegular(path string) error { return fmt.Errorf("%s: not a regular file", path) }
