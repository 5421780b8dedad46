package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// besideFile is a file written beside its target and renamed to it once whole (commit), so that
// a transfer or a copy cut short never leaves a partial file under the target's name.
type besideFile struct {
	*os.File
	target string
}

// createBeside creates the file in target's directory, hidden, with mode 0600.
func createBeside(target string) (*besideFile, error) {
	f, err := os.CreateTemp(filepath.Dir(target), besidePattern(filepath.Base(target)))
	if err != nil {
		// Said of the file asked for: the hidden name it is written under first means nothing
		// to whoever named it.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %w (in %s)", target, pe.Err, filepath.Dir(target))
		}
		return nil, err
	}
	return &besideFile{File: f, target: target}, nil
}

// besidePattern is the name pattern of the files createBeside makes for a target named name.
func besidePattern(name string) string { return "." + name + ".*" }

// commit syncs and closes the file and renames it to its target.
func (f *besideFile) commit() error {
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), f.target)
}

// discard closes the file and removes it, unless commit renamed it: for a defer.
func (f *besideFile) discard() {
	f.Close()
	os.Remove(f.Name())
}
