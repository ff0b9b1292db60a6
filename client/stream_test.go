package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadLine: readLine splits a stream into its lines exactly (a last
// line without its newline included), and refuses a line over its limit
// rather than return it.
func FuzzReadLine(f *testing.F) {
	for _, s := range []string{"", "{}\n", "{}\n{}", "a\n\nb\n", string(bytes.Repeat([]byte("x"), 100)) + "\n"} {
		f.Add([]byte(s), uint8(16))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		var got [][]byte
		for {
			line, err := readLine(br, int64(limit))
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				for _, l := range bytes.Split(data, []byte("\n")) {
					if len(l) > int(limit) {
						return // refused a line over the limit, as it should
					}
				}
				t.Fatalf("readLine failed on lines within the limit: %v", err)
			}
			if len(line) > int(limit) {
				t.Fatalf("returned a %d-byte line over the limit %d", len(line), limit)
			}
			got = append(got, append([]byte(nil), line...))
		}
		want := bytes.Split(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] == '\n' || len(data) == 0 {
			want = want[:len(want)-1]
		}
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}
