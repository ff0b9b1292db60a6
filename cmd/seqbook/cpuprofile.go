package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"
)

// The environment that turns CPU profiling on. Child processes inherit it,
// so one setting profiles every process of a localnet or a benchmark.
const (
	// envCPUProfileDir names the folder the profiles are written to.
	envCPUProfileDir = "SEQBOOK_CPUPROFILE_DIR"
	// envCPUProfileOnSignal, set to 1, profiles only between two SIGUSR1s
	// instead of the whole run: the first starts the profile, the second
	// writes it. `seqbook bench --cpuprofile` uses it to profile exactly
	// the saturation phase of every process.
	envCPUProfileOnSignal = "SEQBOOK_CPUPROFILE_ON_SIGNAL"
)

// profilePath is where the process pid of command name writes its profile.
func profilePath(dir, name string, pid int) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, pid))
}

// runProfiled runs a subcommand, writing a CPU profile to
// $SEQBOOK_CPUPROFILE_DIR/<command>-<pid>.pprof when that variable is set:
// of the whole run, or of the span between two SIGUSR1s when
// $SEQBOOK_CPUPROFILE_ON_SIGNAL is 1 (`go tool pprof` reads the files).
func runProfiled(c command) int {
	dir := os.Getenv(envCPUProfileDir)
	if dir == "" {
		return c.run(os.Args[2:])
	}
	path := profilePath(dir, c.name, os.Getpid())
	if os.Getenv(envCPUProfileOnSignal) == "1" {
		p := &signalProfiler{path: path}
		stop := p.listen()
		defer stop()
		return c.run(os.Args[2:])
	}
	f, err := os.Create(path)
	if err != nil {
		return fail(c.name, fmt.Errorf("%s: %w", envCPUProfileDir, err))
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return fail(c.name, fmt.Errorf("%s: %w", envCPUProfileDir, err))
	}
	defer pprof.StopCPUProfile()
	return c.run(os.Args[2:])
}

// signalProfiler starts a CPU profile on one SIGUSR1 and writes it on the
// next. The profile is written to path+".part" and renamed to path once
// complete, so a reader waiting for path never sees half a file.
type signalProfiler struct {
	path string
	mu   sync.Mutex
	f    *os.File // the profile being written; nil when not profiling
}

// armedSuffix marks a process that handles SIGUSR1 (path+armedSuffix
// exists while it does): SIGUSR1 ends a process that does not, such as an
// older seqbook given to the bench with --binary.
const armedSuffix = ".armed"

// listen handles SIGUSR1 until the returned function is called; that
// function also writes a profile still running.
func (p *signalProfiler) listen() (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	if err := os.WriteFile(p.path+armedSuffix, nil, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "seqbook: cpu profile: %v\n", err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				if err := p.toggle(); err != nil {
					fmt.Fprintf(os.Stderr, "seqbook: cpu profile: %v\n", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		os.Remove(p.path + armedSuffix)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.f != nil {
			p.finish()
		}
	}
}

func (p *signalProfiler) toggle() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		return p.finish()
	}
	f, err := os.Create(p.path + ".part")
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	p.f = f
	return nil
}

// finish stops the profile and publishes it. Callers hold p.mu.
func (p *signalProfiler) finish() error {
	pprof.StopCPUProfile()
	err := p.f.Close()
	p.f = nil
	if err != nil {
		return err
	}
	return os.Rename(p.path+".part", p.path)
}

// phaseProfile profiles one phase of a benchmark's network: its processes
// were started with envCPUProfileOnSignal, so one SIGUSR1 to each starts
// their profiles and the next writes them.
type phaseProfile struct {
	dir  string
	pids map[string][]int // process kind (sequencer, replica, aggregator) → pids
}

// env is what the network's processes need in their environment.
func (pp *phaseProfile) env() []string {
	return []string{envCPUProfileDir + "=" + pp.dir, envCPUProfileOnSignal + "=1"}
}

func (pp *phaseProfile) signal() error {
	var errs []error
	for _, pids := range pp.pids {
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
				errs = append(errs, fmt.Errorf("signal process %d: %w", pid, err))
			}
		}
	}
	return errors.Join(errs...)
}

// start starts every process's profile. It signals no process unless all
// of them handle the signal: to one that does not, it is fatal.
func (pp *phaseProfile) start() error {
	for kind, pids := range pp.pids {
		for _, pid := range pids {
			if _, err := os.Stat(profilePath(pp.dir, kind, pid) + armedSuffix); err != nil {
				return fmt.Errorf("process %d (%s) cannot profile on a signal (an older seqbook given with --binary?): %w", pid, kind, err)
			}
		}
	}
	return pp.signal()
}

// stop ends every process's profile and waits (up to wait) until each has
// written its file, returning the files.
func (pp *phaseProfile) stop(wait time.Duration) ([]string, error) {
	if err := pp.signal(); err != nil {
		return nil, err
	}
	var files []string
	deadline := time.Now().Add(wait)
	for kind, pids := range pp.pids {
		for _, pid := range pids {
			path := profilePath(pp.dir, kind, pid)
			for {
				if _, err := os.Stat(path); err == nil {
					break
				}
				if time.Now().After(deadline) {
					return files, fmt.Errorf("cpu profile of process %d (%s) not written to %s within %s", pid, kind, path, wait)
				}
				time.Sleep(20 * time.Millisecond)
			}
			files = append(files, path)
		}
	}
	return files, nil
}
