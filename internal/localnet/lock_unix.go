//go:build unix

package localnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile is held (flock, exclusive) by the localnet that runs a folder,
// for as long as its network runs; the kernel drops it if that process dies.
const lockFile = "localnet.lock"

// lockDir takes the folder's lock without waiting: a second localnet on
// the same folder is refused at once instead of starting children that
// fight the first network's over its databases.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("localnet: %s is in use by another running localnet (it holds %s); stop it first or use another --dir", dir, path)
		}
		return nil, fmt.Errorf("localnet: locking %s: %w", path, err)
	}
	return f, nil
}
