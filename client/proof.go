package client

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/eip712"
)

// BalanceProof is the aggregator's quorum proof of a balance (DESIGN §6),
// exactly as served by GET /aggregate_balance: replicas' BLS signatures
// over the EIP-712 digest of
// Balance(string app,address account,string token,uint256 balance,uint64 index),
// aggregated into one. Any verifier holding the cluster file checks it
// with VerifyBalanceProof; nothing in it is trusted before that.
type BalanceProof struct {
	// App is the cluster's app (part of what is signed).
	App string `json:"app"`
	// Address is the account, 0x + 40 hex digits.
	Address string `json:"address"`
	// Token is the token symbol, e.g. "ETH".
	Token string `json:"token"`
	// Balance is BalanceUnits as a decimal ("1.5"), for humans; it must be
	// exactly amount.Format(BalanceUnits).
	Balance string `json:"balance"`
	// BalanceUnits is the balance in base units (6 decimals) as a decimal
	// integer string: the value signed.
	BalanceUnits string `json:"balance_units"`
	// Index is the applied batch index the balance is as of. A verifier
	// that acts on proofs should keep the highest index it acted on and
	// refuse older ones: an older proof stays valid forever.
	Index uint64 `json:"index"`
	// Digest is the EIP-712 digest signed, 0x + 64 hex digits.
	Digest string `json:"digest"`
	// Signature is the aggregate BLS signature (96 bytes, 0x-hex).
	Signature string `json:"signature"`
	// Signers are the replica ids (cluster file) whose signatures are in
	// Signature; NonSigners are the other replicas of the cluster. Both in
	// cluster order.
	Signers    []string `json:"signers"`
	NonSigners []string `json:"non_signers"`
	// Threshold is how many signers the proof claims it needs; a verifier
	// requires it to be at least the cluster's ReplicaThreshold.
	Threshold int `json:"threshold"`
}

// WithdrawalProof is the quorum proof of a recorded withdrawal, what a
// bridge pays out on: replicas' aggregate BLS signature over the EIP-712
// digest of
// Withdrawal(string app,bytes32 id,address trader,string token,uint256 amount,address recipient,uint64 index).
type WithdrawalProof struct {
	App string `json:"app"`
	// ID is the withdrawal's id (0x + 64 hex digits); a bridge pays each id
	// once.
	ID string `json:"id"`
	// Trader is the account debited, Recipient the one to pay.
	Trader string `json:"trader"`
	Token  string `json:"token"`
	// Amount is AmountUnits as a decimal; AmountUnits is the value signed.
	Amount      string `json:"amount"`
	AmountUnits string `json:"amount_units"`
	Recipient   string `json:"recipient"`
	// Index is the batch index at which the withdrawal was applied.
	Index      uint64   `json:"index"`
	Digest     string   `json:"digest"`
	Signature  string   `json:"signature"`
	Signers    []string `json:"signers"`
	NonSigners []string `json:"non_signers"`
	Threshold  int      `json:"threshold"`
}

// Errors of proof verification. Each is wrapped with the details; test
// for them with errors.Is.
var (
	ErrProofMalformed   = errors.New("proof field is malformed")
	ErrProofApp         = errors.New("proof is for another app")
	ErrProofAmountText  = errors.New("proof's decimal amount does not match its base units")
	ErrProofDigest      = errors.New("proof's digest does not match its fields")
	ErrProofSigner      = errors.New("proof names a signer that is not a replica of the cluster")
	ErrProofDupSigner   = errors.New("proof names a signer twice")
	ErrProofNonSigners  = errors.New("proof's non-signers are not exactly the other replicas")
	ErrProofThreshold   = errors.New("proof's threshold is below the cluster's")
	ErrProofTooFew      = errors.New("proof has fewer signers than its threshold")
	ErrProofSignature   = errors.New("proof's aggregate BLS signature does not verify")
	ErrProofUnknownKind = errors.New("not a balance or withdrawal proof")
)

// Message returns the signed Balance message the proof's fields describe,
// after checking each field's form.
func (p *BalanceProof) Message() (eip712.Balance, error) {
	acct, err := parseAddress("address", p.Address)
	if err != nil {
		return eip712.Balance{}, err
	}
	if err := checkToken(p.Token); err != nil {
		return eip712.Balance{}, err
	}
	units, err := parseAmountPair("balance", p.Balance, p.BalanceUnits)
	if err != nil {
		return eip712.Balance{}, err
	}
	return eip712.Balance{App: p.App, Account: acct, Token: p.Token, Balance: units, Index: p.Index}, nil
}

// Message returns the signed Withdrawal message the proof's fields
// describe, after checking each field's form.
func (p *WithdrawalProof) Message() (eip712.Withdrawal, error) {
	id, err := parseHex32Field("id", p.ID)
	if err != nil {
		return eip712.Withdrawal{}, err
	}
	trader, err := parseAddress("trader", p.Trader)
	if err != nil {
		return eip712.Withdrawal{}, err
	}
	recipient, err := parseAddress("recipient", p.Recipient)
	if err != nil {
		return eip712.Withdrawal{}, err
	}
	if err := checkToken(p.Token); err != nil {
		return eip712.Withdrawal{}, err
	}
	units, err := parseAmountPair("amount", p.Amount, p.AmountUnits)
	if err != nil {
		return eip712.Withdrawal{}, err
	}
	return eip712.Withdrawal{App: p.App, ID: id, Trader: trader, Token: p.Token, Amount: units, Recipient: recipient, Index: p.Index}, nil
}

// VerifyBalanceProof checks a balance proof against a cluster file, trusting
// nothing in it:
//
//  1. app is the cluster's app;
//  2. every field is well formed, and balance == amount.Format(balance_units);
//  3. digest equals the EIP-712 digest (cluster domain) recomputed from the
//     fields;
//  4. signers are distinct replicas of the cluster, non_signers exactly the
//     other replicas;
//  5. threshold ≥ the cluster's ReplicaThreshold (a proof cannot lower its
//     own bar) and there are at least threshold signers;
//  6. the aggregate signature verifies against the sum of the signers' keys
//     (whose proofs of possession cluster.Parse checked).
//
// A nil error means a threshold of replicas signed exactly this balance of
// this account at this index; whether the index is recent enough is the
// caller's call.
func VerifyBalanceProof(c *cluster.Cluster, p *BalanceProof) error {
	if p == nil {
		return fmt.Errorf("%w: no proof", ErrProofMalformed)
	}
	return verifyMessageProof(c, p.App, func() (eip712.Message, error) { m, err := p.Message(); return &m, err },
		p.Digest, p.Signature, p.Signers, p.NonSigners, p.Threshold)
}

// VerifyWithdrawalProof checks a withdrawal proof the way
// VerifyBalanceProof checks a balance proof. A bridge must also pay each
// id at most once.
func VerifyWithdrawalProof(c *cluster.Cluster, p *WithdrawalProof) error {
	if p == nil {
		return fmt.Errorf("%w: no proof", ErrProofMalformed)
	}
	return verifyMessageProof(c, p.App, func() (eip712.Message, error) { m, err := p.Message(); return &m, err },
		p.Digest, p.Signature, p.Signers, p.NonSigners, p.Threshold)
}

// verifyMessageProof checks the app, reads the signed message from the
// proof's fields and checks the quorum signature over its digest.
func verifyMessageProof(c *cluster.Cluster, app string, message func() (eip712.Message, error),
	digestHex, sigHex string, signers, nonSigners []string, threshold int) error {
	if app != c.App {
		return fmt.Errorf("%w: proof app %q, cluster app %q", ErrProofApp, app, c.App)
	}
	m, err := message()
	if err != nil {
		return err
	}
	return verifyReplicaProof(c, c.Domain.Digest(m), digestHex, sigHex, signers, nonSigners, threshold)
}

func verifyReplicaProof(c *cluster.Cluster, digest [32]byte, digestHex, sigHex string, signers, nonSigners []string, threshold int) error {
	served, err := parseHex32Field("digest", digestHex)
	if err != nil {
		return err
	}
	if served != digest {
		return fmt.Errorf("%w: proof says %s, fields give %s", ErrProofDigest, digestHex, hex32(digest))
	}
	// Each signer at most once: a repeated key would count one replica twice.
	seen := make(map[string]bool, len(c.Replicas))
	keys := make([]*bls.PublicKey, 0, len(signers))
	for _, id := range signers {
		i, ok := c.ReplicaIndex(id)
		if !ok {
			return fmt.Errorf("%w: %q", ErrProofSigner, id)
		}
		if seen[id] {
			return fmt.Errorf("%w: %q", ErrProofDupSigner, id)
		}
		seen[id] = true
		keys = append(keys, c.ReplicaKey(i))
	}
	if err := checkNonSigners(c, seen, nonSigners); err != nil {
		return err
	}
	if threshold < c.ReplicaThreshold() {
		return fmt.Errorf("%w: proof says %d, the cluster of %d replicas needs %d", ErrProofThreshold, threshold, len(c.Replicas), c.ReplicaThreshold())
	}
	if len(signers) < threshold {
		return fmt.Errorf("%w: %d signers, threshold %d", ErrProofTooFew, len(signers), threshold)
	}
	sig, err := bls.SignatureFromHex(sigHex)
	if err != nil {
		return fmt.Errorf("%w: signature: %v", ErrProofMalformed, err)
	}
	// Summing the keys then one pairing check: what a contract or another
	// language does, and the same as FastAggregateVerify.
	if !sig.Verify(bls.AggregatePublicKeys(keys), digest) {
		return ErrProofSignature
	}
	return nil
}

func checkNonSigners(c *cluster.Cluster, signers map[string]bool, nonSigners []string) error {
	seen := make(map[string]bool, len(nonSigners))
	for _, id := range nonSigners {
		if _, ok := c.ReplicaIndex(id); !ok {
			return fmt.Errorf("%w: %q is not a replica of the cluster", ErrProofNonSigners, id)
		}
		if signers[id] || seen[id] {
			return fmt.Errorf("%w: %q listed twice", ErrProofNonSigners, id)
		}
		seen[id] = true
	}
	if len(signers)+len(seen) != len(c.Replicas) {
		return fmt.Errorf("%w: %d signers and %d non-signers, the cluster has %d replicas", ErrProofNonSigners, len(signers), len(seen), len(c.Replicas))
	}
	return nil
}

// NewBalanceProof assembles a balance proof from an aggregate signature of
// the named replicas over m (what the aggregator serves): digest, decimal
// text, non-signers and the cluster's threshold are filled in. Signers are
// put in cluster order. It does not verify; VerifyBalanceProof does.
func NewBalanceProof(c *cluster.Cluster, m eip712.Balance, sig *bls.Signature, signers []string) *BalanceProof {
	d := c.Domain.Digest(&m)
	s, ns := splitReplicas(c, signers)
	return &BalanceProof{
		App: m.App, Address: m.Account.Hex(), Token: m.Token,
		Balance: amount.Format(m.Balance), BalanceUnits: fmt.Sprint(m.Balance),
		Index: m.Index, Digest: hex32(d), Signature: sig.Hex(),
		Signers: s, NonSigners: ns, Threshold: c.ReplicaThreshold(),
	}
}

// NewWithdrawalProof is NewBalanceProof for a withdrawal.
func NewWithdrawalProof(c *cluster.Cluster, m eip712.Withdrawal, sig *bls.Signature, signers []string) *WithdrawalProof {
	d := c.Domain.Digest(&m)
	s, ns := splitReplicas(c, signers)
	return &WithdrawalProof{
		App: m.App, ID: hex32(m.ID), Trader: m.Trader.Hex(), Token: m.Token,
		Amount: amount.Format(m.Amount), AmountUnits: fmt.Sprint(m.Amount),
		Recipient: m.Recipient.Hex(), Index: m.Index, Digest: hex32(d), Signature: sig.Hex(),
		Signers: s, NonSigners: ns, Threshold: c.ReplicaThreshold(),
	}
}

// splitReplicas returns the cluster's replicas in cluster order, split into
// those named (signers) and the others. Unknown names are kept at the end
// of signers so that verification reports them.
func splitReplicas(c *cluster.Cluster, names []string) (signers, nonSigners []string) {
	named := make(map[string]bool, len(names))
	for _, n := range names {
		named[n] = true
	}
	signers, nonSigners = []string{}, []string{}
	for _, r := range c.Replicas {
		if named[r.ID] {
			signers = append(signers, r.ID)
			delete(named, r.ID)
		} else {
			nonSigners = append(nonSigners, r.ID)
		}
	}
	for _, n := range names {
		if named[n] {
			signers = append(signers, n)
		}
	}
	return signers, nonSigners
}

// ProofKind says which proof a JSON document holds.
type ProofKind int

// The proof kinds ParseProof tells apart.
const (
	KindBalance ProofKind = iota + 1
	KindWithdrawal
)

// proofBytesMax bounds a proof document: the largest honest one is a few
// hundred bytes per replica.
const proofBytesMax = 1 << 20

// ParseProof decodes a proof document and says which kind it is: one with
// "id" or "recipient" is a withdrawal proof, one with "address" a balance
// proof. Exactly one of the returned pointers is non-nil on success.
// Unknown fields are refused, so a document of one kind is never read as
// the other.
func ParseProof(b []byte) (ProofKind, *BalanceProof, *WithdrawalProof, error) {
	if len(b) > proofBytesMax {
		return 0, nil, nil, fmt.Errorf("%w: document of %d bytes", ErrProofUnknownKind, len(b))
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %v", ErrProofMalformed, err)
	}
	_, hasID := keys["id"]
	_, hasRecipient := keys["recipient"]
	_, hasAddress := keys["address"]
	switch {
	case hasID || hasRecipient:
		var p WithdrawalProof
		if err := decodeStrict(b, &p); err != nil {
			return 0, nil, nil, fmt.Errorf("%w: withdrawal proof: %v", ErrProofMalformed, err)
		}
		return KindWithdrawal, nil, &p, nil
	case hasAddress:
		var p BalanceProof
		if err := decodeStrict(b, &p); err != nil {
			return 0, nil, nil, fmt.Errorf("%w: balance proof: %v", ErrProofMalformed, err)
		}
		return KindBalance, &p, nil, nil
	}
	return 0, nil, nil, ErrProofUnknownKind
}

func decodeStrict(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// parseAddress reads a 0x-prefixed 20-byte hex address for a proof field.
func parseAddress(field, s string) (common.Address, error) {
	a, problem := decodeAddress(s)
	if problem != "" {
		return a, fmt.Errorf("%w: %s %q %s", ErrProofMalformed, field, s, problem)
	}
	return a, nil
}

// decodeAddress reads 0x and 40 hex digits. Mixed-case input must carry a
// valid EIP-55 checksum, so a typo in one letter is caught; all-lower and
// all-upper input carries none.
func decodeAddress(s string) (common.Address, string) {
	var a common.Address
	if len(s) != 42 || s[:2] != "0x" {
		return a, "must be 0x and 40 hex digits"
	}
	if _, err := hex.Decode(a[:], []byte(s[2:])); err != nil {
		return a, "is not hex"
	}
	body := s[2:]
	if body != strings.ToLower(body) && body != strings.ToUpper(body) && a.Hex() != s {
		return a, "has a wrong EIP-55 checksum"
	}
	return a, ""
}

// ParseAddress reads an account address as the SDK accepts it: 0x and 40
// hex digits, with a valid EIP-55 checksum when mixed-case.
func ParseAddress(s string) (common.Address, error) {
	a, problem := decodeAddress(strings.TrimSpace(s))
	if problem != "" {
		return a, fmt.Errorf("address %q %s", s, problem)
	}
	return a, nil
}

func parseHex32Field(field, s string) ([32]byte, error) {
	h, err := parseHash32(field, s)
	if err != nil {
		return h, fmt.Errorf("%w: %s must be 0x and 64 hex digits", ErrProofMalformed, field)
	}
	return h, nil
}

// tokenBytesMax bounds a token symbol.
const tokenBytesMax = 32

func checkToken(t string) error {
	if t == "" || len(t) > tokenBytesMax {
		return fmt.Errorf("%w: token %q must be 1 to %d bytes", ErrProofMalformed, t, tokenBytesMax)
	}
	return nil
}

// parseAmountPair reads base units and checks the decimal text names
// exactly the same value (the text is for people; the units are signed).
func parseAmountPair(field, text, units string) (uint64, error) {
	v, err := amount.ParseUnits(units)
	if err != nil {
		return 0, fmt.Errorf("%w: %s_units: %v", ErrProofMalformed, field, err)
	}
	if want := amount.Format(v); text != want {
		return 0, fmt.Errorf("%w: %s %q, %s_units %s is %q", ErrProofAmountText, field, text, field, units, want)
	}
	return v, nil
}
