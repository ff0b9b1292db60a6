package aggregator

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the aggregator. Build it from DefaultConfig or TestConfig and
// check it with ValidateBasic.
type Config struct {
	// Timeout bounds each round of questions to the replicas (the /state
	// round and the /balance or /withdrawals round). A replica that has not
	// answered by then is a non-signer of the proof.
	Timeout time.Duration
	// StragglerWait is how long a round still waits for the remaining
	// replicas once enough of them have answered to settle it: long enough
	// for a healthy but busy replica to be counted as a signer, short
	// enough that a slow replica does not slow every proof down to Timeout.
	StragglerWait time.Duration
	// AnswerBytesMax bounds what is read from one replica answer. A signed
	// balance or withdrawal is a few hundred bytes; anything much larger is
	// a broken or hostile replica and is refused rather than buffered.
	AnswerBytesMax int64
	// LogEvery bounds how often the same kind of problem with the same
	// replica is logged: a replica that is down would otherwise write one
	// line per proof, hundreds per second under load.
	LogEvery time.Duration
	// InFlightMax bounds the proofs built at once. Each one holds two
	// goroutines and one connection per replica for up to 2×Timeout; past
	// the bound a request is refused (503) instead of piling up.
	InFlightMax int
	// Metrics are served on GET /metrics; nil means NopMetrics.
	Metrics *Metrics
}

// DefaultConfig is what `seqbook aggregator` runs with.
func DefaultConfig() Config {
	return Config{
		Timeout:        2 * time.Second,
		StragglerWait:  100 * time.Millisecond,
		AnswerBytesMax: 64 << 10,
		LogEvery:       10 * time.Second,
		InFlightMax:    512,
	}
}

// TestConfig has short waits for tests that make replicas fail.
func TestConfig() Config {
	c := DefaultConfig()
	c.Timeout = 300 * time.Millisecond
	c.StragglerWait = 20 * time.Millisecond
	c.LogEvery = 0
	return c
}

// timeoutMax keeps a typo (--timeout 2h) from parking request goroutines
// for hours.
const timeoutMax = 5 * time.Minute

// ValidateBasic checks the configuration on its own.
func (c Config) ValidateBasic() error {
	if c.Timeout <= 0 || c.Timeout > timeoutMax {
		return fmt.Errorf("aggregator: timeout must be in (0, %s], got %s", timeoutMax, c.Timeout)
	}
	if c.StragglerWait < 0 || c.StragglerWait > c.Timeout {
		return fmt.Errorf("aggregator: straggler wait must be in [0, timeout], got %s", c.StragglerWait)
	}
	if c.AnswerBytesMax < 1024 {
		return errors.New("aggregator: answer size bound must be at least 1 KiB")
	}
	if c.InFlightMax < 1 {
		return errors.New("aggregator: in-flight bound must be at least 1")
	}
	if c.LogEvery < 0 {
		return errors.New("aggregator: log interval must not be negative")
	}
	return nil
}
