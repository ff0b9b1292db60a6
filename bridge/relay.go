package bridge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/obapi"
)

// RelayConfig is what a deposit relayer needs.
type RelayConfig struct {
	Chain    Backend
	Contract common.Address
	Cluster  *cluster.Cluster
	// BridgeKey signs deposit operations; its address must be the cluster
	// file's "bridge".
	BridgeKey *ecdsa.PrivateKey
	// Replica receives the deposit operations and answers GET /ops/{id}.
	Replica *client.Orderbook
	// StatePath is the relayer's state file: the next block to scan and
	// the deposits sent but not yet seen credited. A restart resumes from
	// it.
	StatePath string
	// Confirmations: a deposit is relayed once its block has this many
	// blocks on top of it (0: as soon as it is mined).
	Confirmations uint64
	// StartBlock is the first block scanned when there is no state file
	// (the contract's deployment block).
	StartBlock uint64
	// BlocksPerScan bounds one log query.
	BlocksPerScan uint64
	// Poll is the pause between two steps of Run.
	Poll time.Duration
	// Expiry is how long a signed deposit operation stays valid (at most
	// the replicas' hour).
	Expiry time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultRelayConfig fills the knobs; the caller sets the rest.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{Confirmations: 2, BlocksPerScan: 2000, Poll: time.Second, Expiry: 50 * time.Minute,
		Now: time.Now, Logger: slog.Default()}
}

// ValidateBasic checks the configuration on its own.
func (c *RelayConfig) ValidateBasic() error {
	switch {
	case c.Chain == nil || c.Cluster == nil || c.BridgeKey == nil || c.Replica == nil:
		return errors.New("relay: chain, cluster, bridge key and replica are required")
	case c.StatePath == "":
		return errors.New("relay: a state file is required")
	case c.BlocksPerScan == 0 || c.Poll <= 0:
		return errors.New("relay: blocks per scan and poll must be positive")
	case c.Expiry < time.Minute || c.Expiry > time.Hour:
		return errors.New("relay: expiry must be between 1 minute and 1 hour")
	case c.Cluster.BridgeAddr != Fund(c.BridgeKey):
		return fmt.Errorf("relay: the bridge key is %s, the cluster file's bridge is %s",
			common.Address(Fund(c.BridgeKey)).Hex(), c.Cluster.BridgeAddr.Hex())
	}
	return nil
}

// RelayState is the relayer's state file.
type RelayState struct {
	Contract string `json:"contract"`
	// NextBlock is the first block not scanned yet.
	NextBlock uint64 `json:"next_block"`
	// LastDepositID is the highest deposit id taken from the chain.
	LastDepositID uint64 `json:"last_deposit_id"`
	// Pending are deposits signed and sent (or about to be) whose
	// crediting has not been seen yet.
	Pending []PendingDeposit `json:"pending"`
	// Credited counts deposits seen applied; Failed are deposits the
	// replicas rejected for a reason a new signature cannot fix.
	Credited uint64           `json:"credited"`
	Failed   []PendingDeposit `json:"failed,omitempty"`
}

// PendingDeposit is one relayed deposit: the chain event and the signed
// operation that credits it.
type PendingDeposit struct {
	DepositID uint64               `json:"deposit_id"`
	Block     uint64               `json:"block"`
	Tx        string               `json:"tx"`
	OpID      string               `json:"op_id"`
	Request   obapi.DepositRequest `json:"request"`
	Reason    string               `json:"reason,omitempty"`
}

// Relayer turns the contract's Deposit events into deposit operations,
// each credited exactly once:
//
//   - an event is taken once its block has Confirmations on top;
//   - its operation's nonce is the contract's deposit id, and the
//     operation (with its expiry) is written to the state file before it
//     is sent, so after a restart the same operation, with the same id, is
//     sent again: the replicas apply a (bridge, nonce) pair once while it
//     is within its expiry, and never after it;
//   - an operation is re-signed with a new expiry only when the replica
//     reports it rejected as expired, or unknown once past its expiry;
//   - a deposit leaves the state file only when GET /ops/{id} says
//     applied.
type Relayer struct {
	cfg     RelayConfig
	bridge  *Contract
	state   RelayState
	symbols map[common.Address]string
}

// NewRelayer loads (or starts) the state file.
func NewRelayer(cfg RelayConfig) (*Relayer, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, err
	}
	r := &Relayer{cfg: cfg, bridge: At(cfg.Chain, cfg.Contract), symbols: map[common.Address]string{}}
	b, err := os.ReadFile(cfg.StatePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.state = RelayState{Contract: cfg.Contract.Hex(), NextBlock: cfg.StartBlock, Pending: []PendingDeposit{}}
	case err != nil:
		return nil, fmt.Errorf("relay: state: %w", err)
	default:
		if r.state, err = ParseRelayState(b); err != nil {
			return nil, fmt.Errorf("relay: state file %s: %w", cfg.StatePath, err)
		}
		if !strings.EqualFold(r.state.Contract, cfg.Contract.Hex()) {
			return nil, fmt.Errorf("relay: state file %s is for contract %s, not %s", cfg.StatePath, r.state.Contract, cfg.Contract.Hex())
		}
	}
	return r, nil
}

// State returns a copy of the current state.
func (r *Relayer) State() RelayState {
	s := r.state
	s.Pending = append([]PendingDeposit(nil), s.Pending...)
	return s
}

// Run steps until ctx ends; a failed step is logged and retried.
func (r *Relayer) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		if err := r.Step(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("relay step failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step scans newly confirmed blocks, then sends or checks every pending
// deposit.
func (r *Relayer) Step(ctx context.Context) error {
	if err := r.scan(ctx); err != nil {
		return err
	}
	return r.settle(ctx)
}

func (r *Relayer) scan(ctx context.Context) error {
	head, err := r.cfg.Chain.BlockNumber(ctx)
	if err != nil {
		return fmt.Errorf("relay: head: %w", err)
	}
	if head < r.cfg.Confirmations {
		return nil
	}
	safe := head - r.cfg.Confirmations
	for r.state.NextBlock <= safe {
		to := min(safe, r.state.NextBlock+r.cfg.BlocksPerScan-1)
		deps, err := r.bridge.Deposits(ctx, r.state.NextBlock, to)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if d.ID <= r.state.LastDepositID {
				continue // relayed before a restart
			}
			if d.ID != r.state.LastDepositID+1 && r.state.LastDepositID != 0 {
				r.cfg.Logger.Warn("deposit ids skip: earlier deposits were not scanned", "last", r.state.LastDepositID, "id", d.ID)
			}
			p, err := r.sign(ctx, d)
			if err != nil {
				return err
			}
			r.state.Pending = append(r.state.Pending, p)
			r.state.LastDepositID = d.ID
			r.cfg.Logger.Info("deposit seen", "deposit", d.ID, "account", d.Account.Hex(), "token", p.Request.Token,
				"units", d.Units, "block", d.Block, "op", p.OpID)
		}
		r.state.NextBlock = to + 1
		// Write ahead: the signed operations are on disk before any is sent.
		if err := r.save(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Relayer) sign(ctx context.Context, d DepositEvent) (PendingDeposit, error) {
	sym, ok := r.symbols[d.Token]
	if !ok {
		s, err := r.bridge.SymbolOf(ctx, d.Token)
		if err != nil {
			return PendingDeposit{}, err
		}
		if s == "" {
			return PendingDeposit{}, fmt.Errorf("relay: deposit %d is of token %s, which the bridge does not list", d.ID, d.Token.Hex())
		}
		r.symbols[d.Token], sym = s, s
	}
	p := PendingDeposit{DepositID: d.ID, Block: d.Block, Tx: d.Tx.Hex()}
	return p, r.resign(&p, d.Account, sym, d.Units)
}

// resign signs the deposit's operation with a fresh expiry.
func (r *Relayer) resign(p *PendingDeposit, account common.Address, token string, units uint64) error {
	req, id, err := client.SignDeposit(r.cfg.BridgeKey, obapi.Deposit{
		ChainID: r.cfg.Cluster.ChainID, App: r.cfg.Cluster.App, Account: account, Token: token, Amount: units,
		Nonce: p.DepositID, Expiry: uint64(r.cfg.Now().Add(r.cfg.Expiry).Unix()),
	})
	if err != nil {
		return fmt.Errorf("relay: deposit %d: %w", p.DepositID, err)
	}
	p.Request, p.OpID = req, "0x"+common.Bytes2Hex(id[:])
	return nil
}

// settle checks every pending deposit with the replica and sends those it
// does not know. Entries are updated in place (a re-signed one is saved at
// once) and the settled ones removed at the end.
func (r *Relayer) settle(ctx context.Context) error {
	type outcome int
	const (
		waiting outcome = iota
		credited
		failed
	)
	outcomes := make([]outcome, len(r.state.Pending))
	var firstErr error
	for i := range r.state.Pending {
		p := &r.state.Pending[i]
		done, bad, err := r.settleOne(ctx, p)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		switch {
		case done:
			outcomes[i] = credited
			r.cfg.Logger.Info("deposit credited", "deposit", p.DepositID, "op", p.OpID)
		case bad:
			outcomes[i] = failed
			r.cfg.Logger.Error("deposit rejected by the replicas; it needs an operator", "deposit", p.DepositID, "reason", p.Reason)
		}
	}
	keep := make([]PendingDeposit, 0, len(r.state.Pending))
	for i, p := range r.state.Pending {
		switch outcomes[i] {
		case credited:
			r.state.Credited++
		case failed:
			r.state.Failed = append(r.state.Failed, p)
		default:
			keep = append(keep, p)
		}
	}
	if len(keep) != len(r.state.Pending) {
		r.state.Pending = keep
		if err := r.save(); err != nil {
			return err
		}
	}
	return firstErr
}

func (r *Relayer) settleOne(ctx context.Context, p *PendingDeposit) (done, failed bool, err error) {
	id, err := client.ParseHash(p.OpID)
	if err != nil {
		return false, false, fmt.Errorf("relay: state file: deposit %d: %w", p.DepositID, err)
	}
	res, err := r.cfg.Replica.Op(ctx, id)
	var apiErr *client.APIError
	switch {
	case err == nil && res.Status == obapi.StatusApplied:
		return true, false, nil
	case err == nil && res.Status == obapi.StatusRejected:
		if !strings.Contains(res.Reason, "expired") {
			p.Reason = res.Reason
			return false, true, nil
		}
		// Rejected when applied, so it credited nothing: sign anew.
		return false, false, r.resignAndSend(ctx, p, "rejected as expired")
	case err == nil:
		return false, false, nil // pending
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
		if uint64(r.cfg.Now().Unix()) > uint64(numberU64(p.Request.Expiry)) {
			return false, false, r.resignAndSend(ctx, p, "expired before the replica saw it")
		}
		credited, err := r.send(ctx, p)
		return credited, false, err
	default:
		return false, false, fmt.Errorf("relay: deposit %d: %w", p.DepositID, err)
	}
}

func (r *Relayer) resignAndSend(ctx context.Context, p *PendingDeposit, why string) error {
	account, err := client.ParseAddress(p.Request.Account)
	if err != nil {
		return err
	}
	units := numberU64(p.Request.Amount)
	old := p.OpID
	if err := r.resign(p, account, p.Request.Token, units); err != nil {
		return err
	}
	r.cfg.Logger.Info("deposit re-signed", "deposit", p.DepositID, "why", why, "old_op", old, "op", p.OpID)
	// p points into the state: save before sending.
	if err := r.save(); err != nil {
		return err
	}
	_, err = r.send(ctx, p)
	return err
}

// send posts the operation. The replica refusing the nonce as used means
// the deposit is credited: the bridge key signs nonce N only for deposit
// N, so whichever operation used it credited this deposit (a state file
// lost or rolled back leads here). Other conflicts (already pending) are
// left for the next status check.
func (r *Relayer) send(ctx context.Context, p *PendingDeposit) (credited bool, err error) {
	id, _ := client.ParseHash(p.OpID)
	_, err = r.cfg.Replica.PostDeposit(ctx, p.Request, id, false)
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
		return strings.Contains(apiErr.Message, "is already used"), nil
	}
	if err != nil {
		return false, fmt.Errorf("relay: sending deposit %d: %w", p.DepositID, err)
	}
	r.cfg.Logger.Debug("deposit sent", "deposit", p.DepositID, "op", p.OpID)
	return false, nil
}

// relayStateBytesMax bounds a state file: a few hundred bytes per pending
// deposit, and deposits leave it once credited.
const relayStateBytesMax = 64 << 20

// ParseRelayState decodes a state file, refusing unknown fields and
// entries the relayer could not act on.
func ParseRelayState(b []byte) (RelayState, error) {
	var st RelayState
	if len(b) > relayStateBytesMax {
		return st, fmt.Errorf("%d bytes, more than %d", len(b), relayStateBytesMax)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, err
	}
	if dec.More() {
		return st, errors.New("data after the JSON object")
	}
	if !common.IsHexAddress(st.Contract) {
		return st, fmt.Errorf("contract %q is not an address", st.Contract)
	}
	if st.Pending == nil {
		st.Pending = []PendingDeposit{}
	}
	for _, p := range st.Pending {
		if _, err := client.ParseHash(p.OpID); err != nil {
			return st, fmt.Errorf("deposit %d: op_id: %w", p.DepositID, err)
		}
		if _, err := client.ParseAddress(p.Request.Account); err != nil {
			return st, fmt.Errorf("deposit %d: %w", p.DepositID, err)
		}
		for name, n := range map[string]obapi.Number{"amount": p.Request.Amount, "nonce": p.Request.Nonce, "expiry": p.Request.Expiry} {
			if _, err := strconv.ParseUint(string(n), 10, 64); err != nil {
				return st, fmt.Errorf("deposit %d: %s %q is not a base-10 integer", p.DepositID, name, n)
			}
		}
		if p.DepositID == 0 || p.DepositID > st.LastDepositID || numberU64(p.Request.Nonce) != p.DepositID {
			return st, fmt.Errorf("deposit %d: nonce %s or id out of place (last deposit id %d)", p.DepositID, p.Request.Nonce, st.LastDepositID)
		}
	}
	return st, nil
}

// numberU64 reads a base-10 Number the relayer itself wrote.
func numberU64(n obapi.Number) uint64 {
	v, _ := strconv.ParseUint(string(n), 10, 64)
	return v
}

// save writes the state file atomically (temporary file, fsync, rename).
func (r *Relayer) save() error {
	b, err := json.MarshalIndent(&r.state, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.cfg.StatePath), ".relay-state-*")
	if err != nil {
		return fmt.Errorf("relay: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("relay: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("relay: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("relay: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.cfg.StatePath); err != nil {
		return fmt.Errorf("relay: state: %w", err)
	}
	return nil
}

// WriteRelayState writes a state file (for operators who move a relayer,
// and for tests that restart one from an older state).
func WriteRelayState(path string, st *RelayState) error {
	r := &Relayer{cfg: RelayConfig{StatePath: path}, state: *st}
	return r.save()
}
