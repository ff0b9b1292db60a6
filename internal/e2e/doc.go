// Package e2e holds the end-to-end tests: they build the seqbook binary
// once and run its demo, localnet and chaos commands as real processes
// (sequencer nodes, replicas and the aggregator each in its own process),
// checking what the commands verify and report. They are skipped under
// -short.
package e2e
