//go:build unix && !linux

package localnet

import "syscall"

// Only Linux has a parent-death signal; elsewhere Stop must be called.
func setParentDeathSignal(*syscall.SysProcAttr) {}
