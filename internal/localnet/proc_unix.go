//go:build unix

package localnet

import (
	"syscall"
)

// childProcAttr puts each child in its own process group, so a terminal's
// Ctrl-C reaches only localnet (which then stops the children in order) and
// a signal to the group also reaches anything the child started. On Linux
// the child also gets SIGKILL if localnet itself dies, so a crashed test
// never leaves a network running.
func childProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(a)
	return a
}

// signalGroup signals the process group led by pid (the child is its
// leader: Setpgid with Pgid 0).
func signalGroup(pid int, sig syscall.Signal) {
	if err := syscall.Kill(-pid, sig); err != nil {
		// The group is gone already, or the child had not yet become its
		// leader: signal the process itself.
		syscall.Kill(pid, sig)
	}
}
