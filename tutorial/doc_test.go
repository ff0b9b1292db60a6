// Package tutorial holds the test that runs docs/tutorial.md as a reader
// would; the tutorial's programs are in the step* folders below.
package tutorial

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seqbook/seqbook/internal/mdblocks"
)

// tutorialDoc is the page whose commands the test runs.
const tutorialDoc = "../docs/tutorial.md"

// shellCommands returns the commands of every ```sh block of a Markdown
// page, in order, with backslash continuations joined.
func shellCommands(md string) []string {
	var lines []string
	var cont strings.Builder
	for _, b := range mdblocks.Find(md, "sh") {
		for _, l := range strings.Split(strings.TrimSuffix(b.Code, "\n"), "\n") {
			if strings.HasSuffix(l, `\`) {
				cont.WriteString(strings.TrimSuffix(l, `\`))
				continue
			}
			cont.WriteString(l)
			lines = append(lines, cont.String())
			cont.Reset()
		}
	}
	return lines
}

// reader is what the test knows of the services the page started so far,
// to wait after a command as a reader does.
type reader struct {
	// instances are the ports of the replicated instances (steps 3 and
	// 4) started so far, by step binary.
	instances map[string][]string
}

var (
	// portFlag finds a command's --port; a tutorial service without it
	// listens on 5001.
	portFlag = regexp.MustCompile(`--port (\d+)`)
	// urlPort finds the port of 02_place_order's --url.
	urlPort = regexp.MustCompile(`--url http://[a-z0-9.]+:(\d+)`)
	// replicatedStep names the binaries of steps 3 and 4.
	replicatedStep = regexp.MustCompile(`bin/(step3-replicated|step4-verifiable)\b`)
)

// waitsAfter is what the test adds after a command of the page: a reader
// waits until a service started in the background answers before typing
// the next command, until a stopped one is gone before reusing its port,
// and, after placing orders on one instance of steps 3–4, the moment it
// takes the other instances to apply the same batches (the page says
// so) before reading from them.
func (r *reader) waitsAfter(line string) string {
	code := line
	if i := strings.Index(code, "#"); i >= 0 {
		code = code[:i]
	}
	code = strings.TrimSpace(code)
	port := "5001"
	if m := portFlag.FindStringSubmatch(code); m != nil {
		port = m[1]
	}
	switch {
	case strings.HasPrefix(code, "kill $!"):
		return "wait $! 2>/dev/null || true"
	case strings.Contains(code, "02_place_order") && urlPort.MatchString(code):
		url := urlPort.FindStringSubmatch(code)[1]
		for _, ports := range r.instances {
			if slices.Contains(ports, url) {
				return "tutorial_sync " + strings.Join(ports, " ")
			}
		}
		return ""
	case !strings.HasSuffix(code, "&"):
		return ""
	case strings.Contains(code, "localnet"):
		// DESIGN §7's ports: nodes, replicas, aggregator.
		return "tutorial_wait 6001 6002 6003 6004 5001 5002 5003 8001"
	}
	if m := replicatedStep.FindStringSubmatch(code); m != nil && !strings.Contains(code, "--aggregate") {
		r.instances[m[1]] = append(r.instances[m[1]], port)
	}
	return "tutorial_wait " + port
}

// shellQuote quotes s for bash, whatever it holds.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestTutorialRunsAsWritten runs every command of docs/tutorial.md, in
// order, in one bash, from the repository's root, as a reader would: the
// page is the script, so the page and the test cannot drift apart. It
// runs in private network, mount and process namespaces: the page's fixed
// ports (5001, 6001…) and paths (/tmp/sb, bin/) are the namespace's own,
// so the test disturbs nothing on the machine and leaves no process
// behind. The checkout is seen at /mnt inside, since the private /tmp
// would hide a checkout that lives under /tmp.
func TestTutorialRunsAsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local network and the four tutorial services")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1) for private network and mount namespaces")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		if ip, err = exec.LookPath("/usr/sbin/ip"); err != nil {
			t.Skip("needs ip(8) to bring up the namespace's loopback")
		}
	}
	if err := exec.Command(unshare, "--user", "--map-root-user", "--net", "--mount", "true").Run(); err != nil {
		t.Skipf("user namespaces are not available here (unshare: %v)", err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(tutorialDoc)
	if err != nil {
		t.Fatal(err)
	}
	commands := shellCommands(string(md))
	if len(commands) < 20 {
		t.Fatalf("only %d commands found in %s", len(commands), tutorialDoc)
	}

	tmp := t.TempDir()
	for _, d := range []string{"bin", "tmp"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The mount point for the namespace's bin/ (make build makes it too).
	if err := os.MkdirAll(filepath.Join(repo, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}

	var sh strings.Builder
	fmt.Fprintf(&sh, `set -euo pipefail
%[1]q link set lo up
mount --bind %[4]q /mnt
mount --bind %[2]q /mnt/bin
mount --bind %[3]q /tmp
cd /mnt
export GOPROXY=off GOFLAGS=-mod=readonly
tutorial_wait() {
	local deadline=$((SECONDS + 300)) p
	for p in "$@"; do
		until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
			if [ "$SECONDS" -ge "$deadline" ]; then echo "TUTORIAL TEST: nothing listens on port $p" >&2; exit 1; fi
			sleep 0.2
		done
	done
}
applied_index() { curl -s "http://127.0.0.1:$1/state" | grep -o '"applied_index":[0-9]*' | cut -d: -f2; }
tutorial_sync() {
	local deadline=$((SECONDS + 120)) p top=0 i
	for p in "$@"; do i=$(applied_index "$p"); [ "${i:-0}" -gt "$top" ] && top=$i; done
	for p in "$@"; do
		until [ "$(applied_index "$p")" -ge "$top" ] 2>/dev/null; do
			if [ "$SECONDS" -ge "$deadline" ]; then echo "TUTORIAL TEST: instance $p did not apply index $top" >&2; exit 1; fi
			sleep 0.2
		done
	done
}
`, ip, filepath.Join(tmp, "bin"), filepath.Join(tmp, "tmp"), repo)
	rd := &reader{instances: map[string][]string{}}
	for i, c := range commands {
		fmt.Fprintf(&sh, "printf '\\n$ %%s    [tutorial command %d]\\n' %s\n%s\n", i+1, shellQuote(c), c)
		if w := rd.waitsAfter(c); w != "" {
			fmt.Fprintln(&sh, w)
		}
	}
	fmt.Fprintln(&sh, "echo 'TUTORIAL TEST: all commands ran'")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), dl.Add(-30*time.Second))
	}
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child",
		"bash", "-s")
	cmd.Stdin = strings.NewReader(sh.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	runErr := cmd.Run()
	transcript := out.String()
	if runErr != nil || !strings.Contains(transcript, "TUTORIAL TEST: all commands ran") {
		t.Fatalf("the tutorial's commands failed (%v); transcript:\n%s", runErr, transcript)
	}
	// What the reader sees: no refusal, no error answer, and a verified
	// quorum proof at the end.
	for _, bad := range []string{"[HTTP 4", "[HTTP 5", "HTTP 4", "HTTP 5", `"error"`, "refused", "Not Found"} {
		if strings.Contains(transcript, bad) {
			t.Errorf("the transcript shows %q:\n%s", bad, transcript)
		}
	}
	for _, want := range []string{
		"Login successful",
		"the service accepted user1's order", // 02_place_order, steps 2, 3 and 4
		`"balance":"`,                        // one /balance shape
		"verified: balance 800 USDT of 0xc66F8Fba940064B5bA8d437d6fF829E60134230E",
	} {
		if !strings.Contains(transcript, want) {
			t.Errorf("the transcript lacks %q:\n%s", want, transcript)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("transcript:\n%s", transcript)
	}
}

// TestTutorialCommandsAndWaits checks what the runner reads from the page
// and what it adds, without running anything.
func TestTutorialCommandsAndWaits(t *testing.T) {
	md, err := os.ReadFile(tutorialDoc)
	if err != nil {
		t.Fatal(err)
	}
	cmds := shellCommands(string(md))
	if cmds[0] != "make build                              # bin/seqbook and the four tutorial binaries" || cmds[len(cmds)-1] != "kill $(jobs -p)" {
		t.Fatalf("first %q, last %q", cmds[0], cmds[len(cmds)-1])
	}
	for _, c := range cmds {
		if strings.HasSuffix(strings.TrimSpace(c), `\`) {
			t.Fatalf("continuation not joined: %q", c)
		}
	}
	r := &reader{instances: map[string][]string{}}
	for _, tc := range []struct{ line, want string }{
		{"bin/step1-centralized &                 # listens on :5001", "tutorial_wait 5001"},
		{"kill $!                                 # stop step 1", "wait $! 2>/dev/null || true"},
		{"bin/seqbook localnet --dir /tmp/sb &    # wait", "tutorial_wait 6001 6002 6003 6004 5001 5002 5003 8001"},
		{"bin/step3-replicated --cluster /tmp/sb/cluster.json --port 5101 &", "tutorial_wait 5101"},
		{"bin/step3-replicated --cluster /tmp/sb/cluster.json --port 5102 &", "tutorial_wait 5102"},
		{"go run ./scripts/02_place_order --url http://localhost:5101", "tutorial_sync 5101 5102"},
		{"curl http://localhost:5102/state", ""},
		{"bin/step4-verifiable --aggregate --cluster c.json --port 5200 --peers x &", "tutorial_wait 5200"},
	} {
		if got := r.waitsAfter(tc.line); got != tc.want {
			t.Errorf("after %q: %q, want %q", tc.line, got, tc.want)
		}
	}
}
