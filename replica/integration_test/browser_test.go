package integration_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// browser is a headless Chromium driven over the DevTools protocol: just
// enough of it (open a page, evaluate JavaScript, take a screenshot) for
// the explorer test, on the WebSocket library the replica already uses.
type browser struct {
	cmd     *exec.Cmd
	conn    *websocket.Conn
	session string
	nextID  atomic.Int64

	mu      sync.Mutex
	waiting map[int64]chan cdpReply
	logs    []string
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// findChromium returns the browser to run: $SEQBOOK_CHROMIUM, or Debian's
// chromium (installed by .ci/run).
func findChromium() (string, error) {
	if p := os.Getenv("SEQBOOK_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH: install it (apt-get install -y chromium, as .ci/run does) or set SEQBOOK_CHROMIUM")
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startBrowser launches headless Chromium with a fresh profile and opens
// a blank page.
func startBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	bin, err := findChromium()
	if err != nil {
		t.Fatal(err)
	}
	// The profile folder is removed by hand: Chromium's helper processes
	// may still write to it for a moment after the browser is killed,
	// which would fail t.TempDir's cleanup.
	profile, err := os.MkdirTemp("", "seqbook-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+profile, "--remote-debugging-port=0", "--window-size=1400,1100", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Its own process group, so the helpers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{cmd: cmd, waiting: map[int64]chan cdpReply{}}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsURL.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var url string
	select {
	case url = <-found:
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not print its DevTools address within 60s")
	}
	b.conn, _, err = websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.conn.SetReadLimit(64 << 20)
	go b.readLoop(ctx)
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call(t, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.call(t, b.session, "Runtime.enable", nil, nil)
	return b
}

func (b *browser) readLoop(ctx context.Context) {
	for {
		_, data, err := b.conn.Read(ctx)
		if err != nil {
			return
		}
		var m struct {
			ID     int64           `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.Method == "Runtime.consoleAPICalled" || m.Method == "Runtime.exceptionThrown" {
			b.logs = append(b.logs, m.Method+" "+string(m.Params))
		}
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpReply
		}
	}
}

// call sends one DevTools command and decodes its result into out.
func (b *browser) call(t *testing.T, session, method string, params any, out any) {
	t.Helper()
	id := b.nextID.Add(1)
	ch := make(chan cdpReply, 1)
	b.mu.Lock()
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, _ := json.Marshal(msg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.conn.Write(ctx, websocket.MessageText, raw); err != nil {
		t.Fatalf("DevTools %s: %v", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			t.Fatalf("DevTools %s: %s", method, r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				t.Fatalf("DevTools %s: %v", method, err)
			}
		}
	case <-ctx.Done():
		t.Fatalf("DevTools %s: no answer within 60s", method)
	}
}

// eval evaluates a JavaScript expression in the page and returns its
// value as JSON.
func (b *browser) eval(t *testing.T, expr string) json.RawMessage {
	t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.call(t, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if r.ExceptionDetails != nil {
		t.Fatalf("evaluating %s: %s", expr, r.ExceptionDetails.Text)
	}
	return r.Result.Value
}

// evalString evaluates an expression whose value is a string.
func (b *browser) evalString(t *testing.T, expr string) string {
	t.Helper()
	var s string
	_ = json.Unmarshal(b.eval(t, expr), &s)
	return s
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	b.call(t, b.session, "Page.navigate", map[string]any{"url": url}, nil)
}

// screenshot saves the page as a PNG.
func (b *browser) screenshot(t *testing.T, path string) {
	t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call(t, b.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// consoleLog is what the page logged, for failure messages.
func (b *browser) consoleLog() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprint(b.logs)
}
