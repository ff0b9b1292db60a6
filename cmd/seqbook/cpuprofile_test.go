package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A process started with SEQBOOK_CPUPROFILE_ON_SIGNAL writes its profile
// only after the second SIGUSR1, and the file is a complete pprof profile.
func TestSignalProfilerWritesBetweenTwoSignals(t *testing.T) {
	dir := t.TempDir()
	path := profilePath(dir, "replica", os.Getpid())
	p := &signalProfiler{path: path}
	stop := p.listen()
	defer stop()
	pp := &phaseProfile{dir: dir, pids: map[string][]int{"replica": {os.Getpid()}}}

	if err := pp.start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the profile runs (its .part file exists), then spend some CPU.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path + ".part"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first SIGUSR1 did not start a profile")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("profile published before the second signal")
	}
	files, err := pp.stop(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != path {
		t.Fatalf("files %v, want [%s]", files, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) { // pprof profiles are gzipped protobufs
		t.Fatalf("%s is not a gzipped profile: % x", path, b[:min(len(b), 8)])
	}
	if _, err := os.Stat(path + ".part"); !os.IsNotExist(err) {
		t.Fatalf("the .part file remains: %v", err)
	}
}

// start refuses to signal a process that has not said it handles the
// signal (it would end it).
func TestPhaseProfileStartNeedsArmedProcesses(t *testing.T) {
	pp := &phaseProfile{dir: t.TempDir(), pids: map[string][]int{"replica": {os.Getpid()}}}
	if err := pp.start(); err == nil || !strings.Contains(err.Error(), "cannot profile on a signal") {
		t.Fatalf("start: %v", err)
	}
}

// stop reports a process that never writes its profile instead of waiting
// forever.
func TestPhaseProfileStopTimesOut(t *testing.T) {
	p := &signalProfiler{path: filepath.Join(t.TempDir(), "unused")}
	stop := p.listen() // so the signal below does not end the test process
	defer stop()
	pp := &phaseProfile{dir: t.TempDir(), pids: map[string][]int{"sequencer": {os.Getpid()}}}
	if _, err := pp.stop(50 * time.Millisecond); err == nil {
		t.Fatal("stop succeeded although no profile was written")
	}
}
