package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
)

// CPU profiling of any subcommand, for finding where a benchmark's CPU
// goes. Child processes inherit the variables, so one setting profiles
// every process of a local network.
//
//	SEQBOOK_CPUPROFILE_DIR=d             profile the whole run to d/<command>-<pid>.pprof
//	SEQBOOK_CPUPROFILE_DIR=d SEQBOOK_CPUPROFILE_ON=signal
//	                                     profile only between SIGUSR1 (start) and SIGUSR2
//	                                     (stop), to d/<command>-<pid>-<k>.pprof for the k-th
//	                                     phase: what a benchmark measures, not start-up
const (
	cpuProfileDirEnv = "SEQBOOK_CPUPROFILE_DIR"
	cpuProfileOnEnv  = "SEQBOOK_CPUPROFILE_ON"
	// cpuProfileOnSignal is the value of SEQBOOK_CPUPROFILE_ON that
	// profiles phases marked by signals.
	cpuProfileOnSignal = "signal"
	// The signals that start and stop a phase's profile.
	cpuProfileStartSignal = syscall.SIGUSR1
	cpuProfileStopSignal  = syscall.SIGUSR2
)

// runProfiled runs a subcommand under the CPU profiling the environment
// asks for (none by default).
func runProfiled(c command) int {
	dir := os.Getenv(cpuProfileDirEnv)
	if dir == "" {
		return c.run(os.Args[2:])
	}
	switch on := os.Getenv(cpuProfileOnEnv); on {
	case "":
		path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", c.name, os.Getpid()))
		stop, err := startCPUProfile(path)
		if err != nil {
			return fail(c.name, err)
		}
		defer stop()
	case cpuProfileOnSignal:
		p := &phaseProfiler{prefix: filepath.Join(dir, fmt.Sprintf("%s-%d", c.name, os.Getpid()))}
		defer p.listen()()
	default:
		return fail(c.name, fmt.Errorf("%s=%q: the only value is %q", cpuProfileOnEnv, on, cpuProfileOnSignal))
	}
	return c.run(os.Args[2:])
}

// startCPUProfile profiles the process to path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cpuProfileDirEnv, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", cpuProfileDirEnv, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// phaseProfiler profiles the phases between a start and a stop signal.
type phaseProfiler struct {
	prefix string // path of the files without "-<k>.pprof"
	mu     sync.Mutex
	phases int
	stop   func() // stops the phase under way; nil when none
}

// listen handles the signals until the returned function is called; that
// also ends a phase still under way, so its profile is complete.
func (p *phaseProfiler) listen() (done func()) {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, cpuProfileStartSignal, cpuProfileStopSignal)
	quit := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-quit:
				return
			case s := <-sig:
				p.handle(s)
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(quit)
		<-exited
		p.handle(cpuProfileStopSignal)
	}
}

func (p *phaseProfiler) handle(s os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		p.stop() // a start while running restarts: the profile so far is kept
		p.stop = nil
	}
	if s != cpuProfileStartSignal {
		return
	}
	p.phases++
	stop, err := startCPUProfile(fmt.Sprintf("%s-%d.pprof", p.prefix, p.phases))
	if err != nil {
		fmt.Fprintf(os.Stderr, "seqbook: %v\n", err)
		return
	}
	p.stop = stop
}
