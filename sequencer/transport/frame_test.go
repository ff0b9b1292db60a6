package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTripAndBounds(t *testing.T) {
	var buf bytes.Buffer
	for _, msg := range [][]byte{{1}, []byte("hello"), bytes.Repeat([]byte{9}, 1000)} {
		if err := writeFrame(&buf, msg, 1000); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range [][]byte{{1}, []byte("hello"), bytes.Repeat([]byte{9}, 1000)} {
		got, err := readFrame(&buf, 1000)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("readFrame = %v, %v", len(got), err)
		}
	}
	if _, err := readFrame(&buf, 1000); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
	if err := writeFrame(&buf, make([]byte, 1001), 1000); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversize write: %v", err)
	}
	if err := writeFrame(&buf, nil, 1000); !errors.Is(err, errFrameEmpty) {
		t.Fatalf("empty write: %v", err)
	}
	// A header announcing 4 GiB is refused before any allocation.
	if _, err := readFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), 1000); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("huge header: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 0}), 1000); !errors.Is(err, errFrameEmpty) {
		t.Fatalf("zero header: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 5, 1, 2}), 1000); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated body: %v", err)
	}
}

// FuzzReadFrame: any byte stream yields frames within the bound or an
// error, never a panic, and re-encoding what was read reproduces the input
// prefix.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 42})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 3, 1, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 64
		r := bytes.NewReader(in)
		var out bytes.Buffer
		for {
			data, err := readFrame(r, max)
			if err != nil {
				break
			}
			if len(data) == 0 || len(data) > max {
				t.Fatalf("frame of %d bytes passed the bound", len(data))
			}
			if err := writeFrame(&out, data, max); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatal("re-encoded frames differ from the input")
		}
	})
}

// FuzzDecodeHello: the hello decoder refuses or accepts without panicking,
// and what it accepts re-encodes to the same bytes.
func FuzzDecodeHello(f *testing.F) {
	good := (&hello{Role: roleDialer, From: "node1", To: "node2", Sig: bytes.Repeat([]byte{3}, 96)}).encode()
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{1, 3, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := decodeHello(in)
		if err != nil {
			return
		}
		if !bytes.Equal(h.encode(), in) {
			t.Fatalf("accepted %x but re-encodes to %x", in, h.encode())
		}
	})
}
