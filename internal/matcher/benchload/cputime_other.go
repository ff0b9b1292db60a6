//go:build !linux

package benchload

// threadCPU is not available here.
func threadCPU() float64 { return -1 }
