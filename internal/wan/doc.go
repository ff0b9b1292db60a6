// Package wan runs a seqbook network as operators run it across hosts:
// one Linux network namespace per process, joined by a userspace switch
// that delays (and may drop or cut off) every packet, so wide-area delays
// and silent partitions can be tested on one machine without the kernel's
// sch_netem. Its test (make test-wan) needs root; it skips otherwise.
//
// Every namespace holds one TUN device with an address in 10.77.0.0/24;
// the switch, in the test process, reads each device's packets and writes
// them to the destination's device after the delay. Nothing outside the
// namespaces it creates is touched, and everything is removed at the end.
package wan
