package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"time"
)

// The integrity layer: everything a replica loads from its data directory
// is checked before the replica signs anything derived from it. A replica
// signs balances and withdrawals; a byte that decayed on disk (or was
// changed) must never come back as a validly signed wrong answer.
//
// Two sealed formats, both versioned, both checked on load:
//
//	sealed snapshot = magic "SQBKSNAP" | version(1) = 1 | uint64be(index) |
//	                  stateDigest(32) | uint32be(sectionBytes) | uint32be(sections) |
//	                  crc32c(section)(4) × sections | crc32c(all of the above)(4) |
//	                  payload (the ledger snapshot), cut into sections of sectionBytes
//
//	sealed log record = version(1) = 1 | crc32c(uint64be(index) ‖ rest)(4) | rest
//	                    rest = uint64be(timestamp) ‖ chainingHash(32) ‖ body
//
// The checksums catch decay and truncation and say where it is. The state
// digest recorded with a snapshot is what the ledger had when it was taken;
// after restoring, the replica recomputes the digest and compares, so a
// change the checksums would miss (or a codec bug) is caught too.
//
// Records written before this layer existed have no version byte: a
// snapshot without the magic, a log record whose first byte is 0 (the top
// byte of a millisecond timestamp). They are still read, unchecked, and
// replaced by sealed ones as the replica goes on.

// CorruptionError reports stored state that failed an integrity check. The
// replica refuses to run on it; see RebuildCommand.
type CorruptionError struct {
	File string // the database file, or "memory store"
	What string // what is wrong, and where
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("%s is corrupt: %s (local damage, not the sequencer's doing; this replica signs nothing from it)", e.File, e.What)
}

// IsCorruption reports whether err is (or wraps) a *CorruptionError.
func IsCorruption(err error) bool {
	var ce *CorruptionError
	return errors.As(err, &ce)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	snapshotMagic        = "SQBKSNAP"
	snapshotSealVersion  = 1
	snapshotSectionBytes = 1 << 20
	snapshotHeaderFixed  = len(snapshotMagic) + 1 + 8 + 32 + 4 + 4
	logRecordVersion     = 1
	logRecordHeader      = 1 + 4
)

// sealedSnapshot is an opened snapshot container.
type sealedSnapshot struct {
	Index   uint64
	Digest  [32]byte
	Payload []byte
	// Legacy: written before sealing existed; nothing was checked and no
	// digest is recorded.
	Legacy bool
}

// sealSnapshot wraps a ledger snapshot taken at index, whose state digest
// is digest.
func sealSnapshot(index uint64, digest [32]byte, payload []byte) []byte {
	n := (len(payload) + snapshotSectionBytes - 1) / snapshotSectionBytes
	b := make([]byte, 0, snapshotHeaderFixed+4*n+4+len(payload))
	b = append(b, snapshotMagic...)
	b = append(b, snapshotSealVersion)
	b = binary.BigEndian.AppendUint64(b, index)
	b = append(b, digest[:]...)
	b = binary.BigEndian.AppendUint32(b, snapshotSectionBytes)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for k := 0; k < n; k++ {
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(section(payload, k, snapshotSectionBytes), crcTable))
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	return append(b, payload...)
}

func section(p []byte, k, size int) []byte {
	end := min(len(p), (k+1)*size)
	return p[k*size : end]
}

// openSnapshot checks a sealed snapshot and returns its parts. The error
// says which part failed; the caller names the file.
func openSnapshot(b []byte) (sealedSnapshot, error) {
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		return sealedSnapshot{Payload: b, Legacy: true}, nil
	}
	if len(b) < snapshotHeaderFixed+4 {
		return sealedSnapshot{}, fmt.Errorf("snapshot header truncated (%d bytes)", len(b))
	}
	if v := b[len(snapshotMagic)]; v != snapshotSealVersion {
		return sealedSnapshot{}, fmt.Errorf("snapshot format version %d, this build reads %d", v, snapshotSealVersion)
	}
	var s sealedSnapshot
	p := len(snapshotMagic) + 1
	s.Index = binary.BigEndian.Uint64(b[p:])
	copy(s.Digest[:], b[p+8:])
	size := int(binary.BigEndian.Uint32(b[p+40:]))
	n := int(binary.BigEndian.Uint32(b[p+44:]))
	hdr := snapshotHeaderFixed + 4*n
	if size < 1 || n > len(b)/4 || len(b) < hdr+4 {
		return sealedSnapshot{}, errors.New("snapshot header damaged (section table out of bounds)")
	}
	if got, want := crc32.Checksum(b[:hdr], crcTable), binary.BigEndian.Uint32(b[hdr:]); got != want {
		return sealedSnapshot{}, errors.New("snapshot header fails its checksum")
	}
	s.Payload = b[hdr+4:]
	if want := n * size; len(s.Payload) > want || len(s.Payload) <= want-size {
		return sealedSnapshot{}, fmt.Errorf("snapshot at index %d truncated or extended: %d payload bytes for %d sections of %d", s.Index, len(s.Payload), n, size)
	}
	for k := 0; k < n; k++ {
		want := binary.BigEndian.Uint32(b[snapshotHeaderFixed+4*k:])
		if crc32.Checksum(section(s.Payload, k, size), crcTable) != want {
			return sealedSnapshot{}, fmt.Errorf("snapshot at index %d: section %d of %d (payload bytes %d-%d) fails its checksum",
				s.Index, k+1, n, k*size, min(len(s.Payload), (k+1)*size)-1)
		}
	}
	return s, nil
}

// sealLogRecord encodes a logged batch.
func sealLogRecord(b *Batch) []byte {
	v := make([]byte, logRecordHeader, logRecordHeader+40+len(b.Body))
	v[0] = logRecordVersion
	v = binary.BigEndian.AppendUint64(v, b.Timestamp)
	v = append(v, b.ChainingHash[:]...)
	v = append(v, b.Body...)
	binary.BigEndian.PutUint32(v[1:], logRecordCRC(b.Index, v[logRecordHeader:]))
	return v
}

func logRecordCRC(index uint64, rest []byte) uint32 {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], index)
	return crc32.Update(crc32.Checksum(k[:], crcTable), crcTable, rest)
}

// openLogRecord checks and decodes a logged batch stored under index. The
// body is copied.
func openLogRecord(index uint64, v []byte) (Batch, error) {
	rest := v
	switch {
	case len(v) > 0 && v[0] == logRecordVersion:
		if len(v) < logRecordHeader+40 {
			return Batch{}, fmt.Errorf("logged batch %d truncated (%d bytes)", index, len(v))
		}
		rest = v[logRecordHeader:]
		if logRecordCRC(index, rest) != binary.BigEndian.Uint32(v[1:]) {
			return Batch{}, fmt.Errorf("logged batch %d fails its checksum", index)
		}
	case len(v) > 0 && v[0] == 0: // legacy: unsealed
		if len(v) < 40 {
			return Batch{}, fmt.Errorf("logged batch %d truncated (%d bytes)", index, len(v))
		}
	default:
		return Batch{}, fmt.Errorf("logged batch %d has unknown format %d", index, firstByte(v))
	}
	return Batch{
		Index:        index,
		Timestamp:    binary.BigEndian.Uint64(rest[:8]),
		ChainingHash: [32]byte(rest[8:40]),
		Body:         bytes.Clone(rest[40:]),
	}, nil
}

func firstByte(v []byte) int {
	if len(v) == 0 {
		return -1
	}
	return int(v[0])
}

// RebuildCommand is the shell command that sets a damaged database aside,
// after which the replica starts from genesis and rebuilds its state from
// the sequencer's verified history.
func RebuildCommand(file string) string {
	return fmt.Sprintf("mv %q %q", file, file+".corrupt")
}

// SetAside renames a damaged database to file.corrupt-<UTC time> (kept for
// inspection, never read again) and returns the new name.
func SetAside(file string, now time.Time) (string, error) {
	aside := file + ".corrupt-" + now.UTC().Format("20060102T150405.000Z")
	if err := os.Rename(file, aside); err != nil {
		return "", err
	}
	return aside, nil
}
