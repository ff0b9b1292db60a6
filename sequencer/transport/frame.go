package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frames on a stream are a 4-byte big-endian length followed by that many
// bytes. The length bound is checked before anything is allocated, so a
// peer announcing a huge frame costs nothing.
const frameHeaderBytes = 4

// errFrameEmpty is returned for a zero-length frame: no message is empty,
// so a zero length is a broken or hostile sender.
var errFrameEmpty = errors.New("transport: empty frame")

// errFrameTooLarge is returned for a frame above the bound.
var errFrameTooLarge = errors.New("transport: frame too large")

// writeFrame writes one frame. It refuses data above frameBytesMax, which
// would be refused by the reader anyway.
func writeFrame(w io.Writer, data []byte, frameBytesMax int) error {
	if len(data) == 0 {
		return errFrameEmpty
	}
	if len(data) > frameBytesMax {
		return fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, len(data), frameBytesMax)
	}
	buf := make([]byte, frameHeaderBytes+len(data))
	binary.BigEndian.PutUint32(buf, uint32(len(data)))
	copy(buf[frameHeaderBytes:], data)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame of at most frameBytesMax bytes.
func readFrame(r io.Reader, frameBytesMax int) ([]byte, error) {
	var hdr [frameHeaderBytes]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, errFrameEmpty
	}
	if uint64(n) > uint64(frameBytesMax) {
		return nil, fmt.Errorf("%w: peer announced %d bytes, limit %d", errFrameTooLarge, n, frameBytesMax)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return data, nil
}
