package client

import "fmt"

// ID names an order or an operation across the SDK: the EIP-712 digest of
// what its trader signed (DESIGN §3.1), so it is known before the order is
// sent. PlaceOrder, Cancel and Withdraw return one; Cancel, Order, Op,
// Withdrawal and WithdrawalProof take one. A [32]byte converts to it
// implicitly. It reads and writes as 0x + 64 lowercase hex digits (String,
// JSON, flags).
type ID [32]byte

// ParseID reads an id written as 0x + 64 hex digits.
func ParseID(s string) (ID, error) {
	h, err := ParseHash(s)
	return ID(h), err
}

// String is the id as 0x + 64 lowercase hex digits, as replicas write it.
func (id ID) String() string { return hex32(id) }

// IsZero reports whether the id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText writes the id as String does (JSON strings, flags).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads an id written as 0x + 64 hex digits.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// sameID reports whether a replica's answer names id (hex in any case).
func sameID(id ID, answered string) bool {
	got, err := ParseHash(answered)
	return err == nil && ID(got) == id
}

var _ fmt.Stringer = ID{}
