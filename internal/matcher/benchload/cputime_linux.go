package benchload

import "syscall"

// rusageThread is Linux's RUSAGE_THREAD (not exported by package syscall).
const rusageThread = 1

// threadCPU returns the CPU time the calling OS thread has used, in
// seconds, or -1 if it cannot tell. The caller locks its goroutine to the
// thread. Unlike wall time, it does not count time the thread waited for a
// core, so it stays meaningful on a machine shared with other work.
func threadCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
