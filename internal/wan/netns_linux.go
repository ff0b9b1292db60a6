package wan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Subnet is the address range used inside the namespaces only.
const Subnet = "10.77.0.0/24"

// Namespace is one named network namespace with a TUN device.
type Namespace struct {
	Name string
	// IP is its address in Subnet; Octet its last byte (the switch port).
	IP    string
	Octet byte
	tun   *os.File
}

// ip runs the ip command.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Supported says why namespaces cannot be used here ("" when they can).
func Supported() string {
	if os.Geteuid() != 0 {
		return "not root: network namespaces and TUN devices need root (CI runs as root)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is missing"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "no /dev/net/tun: " + err.Error()
	}
	probe := fmt.Sprintf("sbwan-probe-%d", os.Getpid())
	if err := ip("netns", "add", probe); err != nil {
		return "cannot create a network namespace: " + err.Error()
	}
	_ = ip("netns", "del", probe)
	return ""
}

// NetemAvailable reports whether the kernel has sch_netem, tried on the
// loopback device of a throwaway namespace.
func NetemAvailable() bool {
	probe := fmt.Sprintf("sbwan-netem-%d", os.Getpid())
	if ip("netns", "add", probe) != nil {
		return false
	}
	defer ip("netns", "del", probe)
	return exec.Command("ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").Run() == nil
}

// NewNamespace creates namespace name with a TUN device addressed
// 10.77.0.<octet>/24, up, and its loopback up.
func NewNamespace(name string, octet byte) (*Namespace, error) {
	if err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	ns := &Namespace{Name: name, IP: fmt.Sprintf("10.77.0.%d", octet), Octet: octet}
	err := inNamespace(name, func() error {
		f, err := openTUN("tun0")
		ns.tun = f
		return err
	})
	if err == nil {
		err = ip("-n", name, "addr", "add", ns.IP+"/24", "dev", "tun0")
	}
	if err == nil {
		err = ip("-n", name, "link", "set", "tun0", "up")
	}
	if err == nil {
		err = ip("-n", name, "link", "set", "lo", "up")
	}
	if err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// Close removes the TUN device (closing it) and the namespace.
func (ns *Namespace) Close() error {
	if ns.tun != nil {
		ns.tun.Close()
	}
	return ip("netns", "del", ns.Name)
}

// Command returns cmd to run inside the namespace: ip netns exec replaces
// itself with the program, so the process is the program.
func (ns *Namespace) Command(bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, bin}, args...)...)
}

// Dial connects from inside the namespace: the socket is made on a
// thread that has entered it (a socket stays in the namespace it was made
// in), so the test process reaches the namespaces' addresses without an
// interface of its own.
func (ns *Namespace) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNamespace(ns.Name, func() error {
		var err error
		// A literal address makes DialContext connect on this goroutine
		// (no resolver, no parallel attempts on other threads).
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// inNamespace runs fn on a thread that has entered namespace name, then
// returns the thread to the process's namespace. A thread that cannot
// return stays locked and ends with its goroutine.
func inNamespace(name string, fn func() error) error {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer home.Close()
	target, err := os.Open("/run/netns/" + name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering namespace %s: %w", name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("leaving namespace %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// openTUN creates a TUN device (IP packets, no extra header) in the
// calling thread's namespace, non-blocking so reads use Go's poller.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating TUN device %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
