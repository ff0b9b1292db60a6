// Package replica is the orderbook app node (DESIGN §5): it accepts signed
// operations over HTTP, checks them and sends them to the sequencer in
// batches, follows the app's finalized batches, re-verifies and applies
// every operation to the deterministic matcher, persists its state in
// bbolt, and serves reads, with BLS-signed balances and withdrawals.
//
// Shape (STYLE §1): Ledger is the deterministic core (state, replay
// protection, read models; time is the batch timestamp); Replica is the
// thin shell around it (HTTP intake, the batcher, the apply loop, the
// store), talking to the world through two ports, Sequencer and Store,
// each with an in-memory twin.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/cluster"
)

// Config holds a replica's knobs. Build it from DefaultConfig (or
// TestConfig) and set the identity fields.
type Config struct {
	// ID is this replica's id in the cluster file; it is named in signed
	// answers.
	ID string
	// Domain gives the EIP-712 domain, the app and the bridge.
	Domain *Domain
	// Key signs balances and withdrawals.
	Key *bls.SecretKey
	// Genesis balances, applied at index 0 (nil: none).
	Genesis *Genesis
	Ledger  LedgerConfig

	// Batching (see batchLoop): a batch leaves when it holds BatchOpsMax
	// operations, or when its time is up: the gap since the previous
	// batch left, which follows the sequencer's answer time between
	// BatchInterval and BatchIntervalMax. After a quiet gap the first
	// operation leaves at once.
	BatchInterval    time.Duration
	BatchIntervalMax time.Duration
	// BatchOpsMax is the size at which a batch leaves without waiting
	// (a batch is also cut at BatchBytesMax).
	BatchOpsMax int
	// PendingMax bounds the operations accepted and not yet applied: the
	// intake answers 429 past it. Each costs memory until applied; the
	// bound also caps a batch at well under 1 MiB per interval.
	PendingMax int
	// SendsInFlightMax bounds concurrent batch sends.
	SendsInFlightMax int
	// SendTimeout bounds one batch send (all nodes tried).
	SendTimeout time.Duration
	// ResendAfter is how long an accepted operation may stay unapplied
	// before it is sent again (the node that took it may have died).
	ResendAfter time.Duration
	// LegacyPendingMax is how long a legacy order (no expiry) is resent
	// before the replica gives up on it.
	LegacyPendingMax time.Duration
	// FollowWait is how long one fetch of finalized batches asks the node
	// to hold the request while nothing new is finalized (a long-poll:
	// the node answers as soon as it finalizes a batch, so an idle
	// replica makes one request per FollowWait instead of polling). It
	// also bounds how long a node cut off from the network while it holds
	// the fetch can keep the replica from the others' finalized batches
	// (FollowWait plus the client's hedge delay): keep it below a leader
	// change. The seqbook replica command also gives it to the SDK as its
	// long-poll time (client.WithLongPoll), which is the heartbeat of the
	// stream of finalized pages the SDKSequencer reads.
	FollowWait time.Duration
	// PollInterval is the shortest gap between two fetches (each page
	// costs a BLS check of its finality proof, ~1 ms of CPU: under load,
	// pages gathered over the gap share one check); PollBackoffMax is the
	// longest pause after errors.
	PollInterval   time.Duration
	PollBackoffMax time.Duration
	// WaitDefault and WaitMax bound ?wait=finalized (and ?timeout=).
	WaitDefault time.Duration
	WaitMax     time.Duration
	// IndexWaitMax bounds how long a read at an index just ahead of the
	// applied one waits.
	IndexWaitMax time.Duration
	// LagWaitMax bounds how long a refusal for funds waits for this
	// replica to apply what the sequencer had finalized when asked, so
	// that the refusal is not one of a lagging state (lag.go). 0: refuse
	// at once, as of the applied index.
	LagWaitMax time.Duration
	// A ledger snapshot is taken when, since the last one, SnapshotEvery
	// batches, or SnapshotOps operations, or SnapshotLogBytes bytes of
	// batch bodies were applied (whichever comes first); batches in
	// between are logged and replayed on restart, so these bound the
	// replay. Counting operations and bytes, not only batches, keeps the
	// snapshot cost per operation flat when batches grow under load.
	SnapshotEvery    uint64
	SnapshotOps      uint64
	SnapshotLogBytes uint64
	// VerifyWorkers is the signature verification pool size (0: one per
	// CPU).
	VerifyWorkers int
	// RequestBytesMax bounds a request body.
	RequestBytesMax int64
	// OrdersPageMax bounds GET /orders.
	OrdersPageMax int
	// AttestEvery: after each index that is a multiple of it, the replica
	// signs its state digest (GET /attestation) and compares it with
	// Peers'. Every replica of a cluster must use the same value.
	AttestEvery uint64
	// AttestCheckInterval is the pause between comparisons with peers.
	AttestCheckInterval time.Duration
	// Peers are the cluster's other replicas (none: no comparison).
	Peers []Peer
	// Rebuild, when set, says why this replica's state is rebuilt from
	// genesis (its stored state was damaged, or differed from a quorum's):
	// it then signs nothing until the rebuild ends (rebuild.go). The store
	// records it, so a replica restarted before the rebuild ended goes on
	// rebuilding with Rebuild empty.
	Rebuild string

	// Now is the wall clock, used only at the edge (request expiry
	// checks, resend timers), never inside the ledger.
	Now    func() time.Time
	Logger *slog.Logger
	// SummaryInterval is how often the apply loop logs a summary of the
	// operations it applied (at info level; each operation's outcome is
	// logged at debug level). 0 turns the summary off.
	SummaryInterval time.Duration
	// Metrics are served on GET /metrics; nil means NopMetrics.
	Metrics *PromMetrics
	// Feed bounds the live feed (GET /ws).
	Feed FeedConfig
	// Cluster, when set, tells the web explorer the aggregator's address
	// and the replicas' keys it verifies proofs with.
	Cluster *cluster.Cluster
}

// DefaultConfig returns the production knobs.
func DefaultConfig() Config {
	return Config{
		Ledger:           DefaultLedgerConfig(),
		BatchInterval:    10 * time.Millisecond,
		BatchIntervalMax: 30 * time.Millisecond,
		BatchOpsMax:      512,
		PendingMax:       20_000,
		SendsInFlightMax: 4,
		SendTimeout:      5 * time.Second,
		ResendAfter:      5 * time.Second,
		LegacyPendingMax: 10 * time.Minute,
		FollowWait:       time.Second,
		PollInterval:     5 * time.Millisecond,
		PollBackoffMax:   time.Second,
		WaitDefault:      10 * time.Second,
		WaitMax:          60 * time.Second,
		IndexWaitMax:     2 * time.Second,
		LagWaitMax:       2 * time.Second,
		SnapshotEvery:    10_000,
		SnapshotOps:      50_000,
		SnapshotLogBytes: 32 << 20,
		RequestBytesMax:  64 << 10,
		OrdersPageMax:    10_000,
		// A digest walks the whole state (tens of ms at 10 MB): every
		// 100 batches keeps that under 1% of the apply loop.
		AttestEvery:         100,
		AttestCheckInterval: time.Second,
		Feed:                DefaultFeedConfig(),
		Now:                 time.Now,
		Logger:              slog.Default(),
		SummaryInterval:     30 * time.Second,
	}
}

// TestConfig is DefaultConfig with millisecond timers for tests.
func TestConfig() Config {
	c := DefaultConfig()
	c.BatchInterval = time.Millisecond
	c.BatchIntervalMax = 5 * time.Millisecond
	c.PollInterval = time.Millisecond
	c.FollowWait = time.Second
	c.PollBackoffMax = 10 * time.Millisecond
	c.ResendAfter = 200 * time.Millisecond
	c.WaitDefault = 5 * time.Second
	c.IndexWaitMax = 200 * time.Millisecond
	c.LagWaitMax = 200 * time.Millisecond
	c.SnapshotEvery = 4
	c.AttestEvery = 4
	c.AttestCheckInterval = 20 * time.Millisecond
	return c
}

// ValidateBasic checks the configuration on its own.
func (c *Config) ValidateBasic() error {
	switch {
	case c.ID == "":
		return errors.New("replica id must be set")
	case c.Domain == nil || c.Domain.App == "":
		return errors.New("domain and app must be set")
	case c.Key == nil:
		return errors.New("a BLS key must be set")
	case c.BatchInterval <= 0 || c.BatchInterval > 10*time.Millisecond:
		return fmt.Errorf("batch interval must be in (0, 10ms], got %v", c.BatchInterval)
	case c.BatchIntervalMax < c.BatchInterval || c.BatchIntervalMax > 100*time.Millisecond:
		return fmt.Errorf("batch interval max must be in [batch interval, 100ms], got %v", c.BatchIntervalMax)
	case c.BatchOpsMax < 1:
		return errors.New("BatchOpsMax must be at least 1")
	case c.PendingMax < 1 || c.SendsInFlightMax < 1:
		return errors.New("PendingMax and SendsInFlightMax must be at least 1")
	case c.SendTimeout <= 0 || c.ResendAfter <= 0 || c.PollInterval <= 0 || c.PollBackoffMax < c.PollInterval || c.FollowWait < 0:
		return errors.New("timeouts must be positive (PollBackoffMax >= PollInterval, FollowWait >= 0)")
	case c.WaitDefault <= 0 || c.WaitMax < c.WaitDefault || c.IndexWaitMax < 0 || c.LagWaitMax < 0:
		return errors.New("wait bounds must be positive (WaitMax >= WaitDefault) and IndexWaitMax, LagWaitMax not negative")
	case c.SnapshotEvery < 1 || c.SnapshotOps < 1 || c.SnapshotLogBytes < 1:
		return errors.New("SnapshotEvery, SnapshotOps and SnapshotLogBytes must be at least 1")
	case c.AttestEvery < 1 || c.AttestCheckInterval <= 0:
		return errors.New("AttestEvery must be at least 1 and AttestCheckInterval positive")
	case c.RequestBytesMax < 1024 || c.OrdersPageMax < 1:
		return errors.New("RequestBytesMax must be at least 1 KiB and OrdersPageMax at least 1")
	case c.Now == nil || c.Logger == nil:
		return errors.New("Now and Logger must be set")
	}
	if err := c.Feed.ValidateBasic(); err != nil {
		return err
	}
	return c.Ledger.ValidateBasic()
}

// DomainOf returns the replica domain of a cluster.
func DomainOf(c *cluster.Cluster) *Domain {
	return &Domain{EIP712: c.Domain, App: c.App, Bridge: c.BridgeAddr}
}

// CheckKey refuses a key that is not the one the cluster file lists for
// replica id: a replica signing with another key would produce
// signatures no verifier accepts.
func CheckKey(c *cluster.Cluster, id string, key *bls.SecretKey) error {
	i, ok := c.ReplicaIndex(id)
	if !ok {
		return fmt.Errorf("replica %q is not in the cluster file", id)
	}
	if !c.ReplicaKey(i).Equal(key.PublicKey()) {
		return fmt.Errorf("the BLS key's public key %s is not replica %s's key in the cluster file (%s)",
			key.PublicKey().Hex(), id, c.Replicas[i].BLSPubkey)
	}
	return nil
}

// Replica is one running orderbook replica. Create it with New, serve
// Handler, and run Run until the context ends.
type Replica struct {
	cfg Config
	// handlerOnce builds handler, the HTTP API, on the first Handler call.
	handlerOnce sync.Once
	handler     http.Handler
	seq         Sequencer
	store       Store
	log         *slog.Logger
	// outcomes logs what the apply loop applied (apply loop only).
	outcomes *outcomeLog

	// mu guards the ledger: the apply loop writes under the write lock,
	// reads and intake checks take the read lock.
	mu     sync.RWMutex
	ledger *Ledger
	// appliedCh is closed (and replaced) after every applied page, to wake
	// readers waiting for an index.
	appliedCh chan struct{}

	// lastSnapshot is the index of the latest snapshot stored or being
	// stored (apply loop only).
	lastSnapshot uint64
	// logOps and logBytes count the operations and body bytes applied
	// since lastSnapshot (apply loop only).
	logOps, logBytes uint64
	// snapshotDone is closed when the snapshot being written in the
	// background is stored (nil: none was started); snapshotErr is its
	// error, read after snapshotDone closed.
	snapshotDone chan struct{}
	snapshotErr  error

	in intake
	// sendRTT is the smoothed answer time of batch sends, in nanoseconds
	// (batchGap).
	sendRTT atomic.Int64
	// att holds this replica's state attestations and how they compare
	// with its peers'.
	att attestor
	// rb says whether the replica is still rebuilding its state.
	rb rebuilder

	// lagAsks limits the finalized-head queries refusals for funds make
	// (lag.go).
	lagAsks *rate.Limiter

	// wmu guards waiters: channels of ?wait=finalized requests by op id.
	wmu     sync.Mutex
	waiters map[[32]byte][]chan OpOutcome

	metrics Metrics
	prom    *PromMetrics
	live    liveState
	feed    *feed
}

// Metrics are the replica's counters (read with Metrics()).
type Metrics struct {
	Applied      uint64 // batches applied
	OpsApplied   uint64 // operations in them
	OpsRejected  uint64
	BatchesSent  uint64
	SendFailures uint64
	Resent       uint64
	// SigsReused counts applied operations whose signature was verified
	// at this replica's intake and not recovered again.
	SigsReused    uint64
	PollFailures  uint64
	CommitSeconds float64 // time spent in Store.Commit
}

// New restores the replica's state from store (snapshot, then the logged
// batches replayed) or starts it from genesis.
func New(cfg Config, seq Sequencer, store Store) (*Replica, error) {
	if err := cfg.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("replica config: %w", err)
	}
	genesis, err := NewLedger(cfg.Ledger, cfg.Domain, cfg.Genesis)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	snap, logged, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("loading state: %w", err)
	}
	r := &Replica{
		cfg: cfg, seq: seq, store: store,
		log:       cfg.Logger.With("replica", cfg.ID, "app", cfg.Domain.App),
		appliedCh: make(chan struct{}),
		lagAsks:   rate.NewLimiter(lagAsksPerSec, lagAsksPerSec),
		waiters:   map[[32]byte][]chan OpOutcome{},
	}
	r.outcomes = newOutcomeLog(r.log, cfg.SummaryInterval, cfg.Now())
	r.in.init(cfg.PendingMax)
	// A rebuild outlives a restart: the store says one was under way.
	stored, err := store.Rebuilding()
	if err != nil {
		return nil, fmt.Errorf("reading the rebuild marker: %w", err)
	}
	switch {
	case cfg.Rebuild != "":
		if err := store.SetRebuilding(cfg.Rebuild); err != nil {
			return nil, fmt.Errorf("recording the rebuild: %w", err)
		}
		r.rb.reason = cfg.Rebuild
	case stored != "":
		r.rb.reason = stored + " (restarted while rebuilding)"
	}
	if snap == nil {
		r.ledger = genesis
		// The genesis state is the first snapshot, so a restart knows
		// which genesis this data directory belongs to.
		s, err := genesis.MarshalSnapshot()
		if err != nil {
			return nil, err
		}
		d, _ := genesis.Digest()
		if err := store.Commit(&Commit{Snapshot: sealSnapshot(0, d, s), SnapshotIndex: 0}); err != nil {
			return nil, fmt.Errorf("storing the genesis snapshot: %w", err)
		}
	} else {
		l, err := restoreChecked(cfg, locationOf(store), snap)
		if err != nil {
			return nil, err
		}
		if l.GenesisHash() != genesis.GenesisHash() {
			return nil, errors.New("the data directory was started from a different genesis than --genesis gives; use the same genesis file or a fresh data directory")
		}
		r.ledger = l
		r.lastSnapshot = l.index
		after, prev, _ := l.Index()
		if err := chainBreak(after, prev, logged); err != nil {
			// Each record passed its checksum, so they were written like
			// this: still local state that cannot be vouched for.
			return nil, &CorruptionError{File: locationOf(store), What: "the batch log does not extend the snapshot's chain: " + err.Error()}
		}
		for _, b := range logged {
			a := r.applyPrepared(prepareBatch(cfg.Domain, b, cfg.VerifyWorkers, nil))
			r.logOps += uint64(len(a.Outcomes))
			r.logBytes += uint64(len(b.Body))
		}
		if len(logged) > 0 {
			r.log.Info("replayed logged batches", "from", after+1, "to", r.ledger.index)
		}
	}
	// Operations accepted before a restart and not applied yet are sent
	// again (after ResendAfter, so the catch-up can show them applied).
	entries, err := store.Outbox()
	if err != nil {
		return nil, fmt.Errorf("loading the outbox: %w", err)
	}
	now := cfg.Now()
	var stale [][32]byte
	for _, e := range entries {
		op, err := DecodeOp(cfg.Domain, e.Wire)
		if err != nil || op.ID != e.ID || r.ledger.alreadyApplied(op) {
			stale = append(stale, e.ID)
			continue
		}
		r.in.restore(op, e.Wire, time.UnixMilli(int64(e.AcceptedMs)), now)
	}
	if len(stale) > 0 {
		if err := store.DeleteOutbox(stale); err != nil {
			return nil, err
		}
	}
	r.initLive()
	return r, nil
}

// locationOf names a store's file in errors.
func locationOf(s Store) string {
	if l, ok := s.(interface{ Location() string }); ok {
		return l.Location()
	}
	return "the replica's store"
}

// restoreChecked opens a sealed snapshot (checksums), restores the ledger
// and recomputes its state digest, which must be the one recorded when the
// snapshot was taken. Any mismatch is a *CorruptionError naming file.
func restoreChecked(cfg Config, file string, snap []byte) (*Ledger, error) {
	sealed, err := openSnapshot(snap)
	if err != nil {
		return nil, &CorruptionError{File: file, What: err.Error()}
	}
	l, err := RestoreLedger(cfg.Ledger, cfg.Domain, sealed.Payload)
	if err != nil {
		return nil, &CorruptionError{File: file, What: "snapshot does not decode: " + err.Error()}
	}
	if sealed.Legacy {
		cfg.Logger.Warn("the stored snapshot predates checksums; it is replaced by a checked one at the next snapshot", "file", file, "index", l.index)
		return l, nil
	}
	if l.index != sealed.Index {
		return nil, &CorruptionError{File: file, What: fmt.Sprintf("snapshot recorded for index %d restores index %d", sealed.Index, l.index)}
	}
	if d, _ := l.Digest(); d != sealed.Digest {
		return nil, &CorruptionError{File: file, What: fmt.Sprintf("the state restored from the snapshot at index %d has digest %x, the snapshot recorded %x", l.index, d, sealed.Digest)}
	}
	return l, nil
}

// prepared is a batch decoded and verified outside the ledger lock.
type prepared struct {
	batch    Batch
	ops      []BatchOp
	batchErr error
	sigErrs  []error
}

func prepareBatch(d *Domain, b Batch, workers int, verified VerifiedFunc) prepared {
	ops, sigErrs, err := DecodeAndVerifyBatch(d, b.Body, workers, verified)
	return prepared{batch: b, ops: ops, batchErr: err, sigErrs: sigErrs}
}

func (r *Replica) applyPrepared(p prepared) *Applied {
	return r.ledger.ApplyBatch(p.batch, p.ops, p.batchErr, p.sigErrs)
}

// Run follows the finalized batches, sends accepted operations, and resends
// stale ones, until ctx ends. It returns a non-nil error only when the
// replica cannot go on (its store failed).
func (r *Replica) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); r.batchLoop(ctx) }()
	go func() { defer wg.Done(); r.resendLoop(ctx) }()
	diverged := make(chan error, 1)
	go func() {
		defer wg.Done()
		if err := r.attestLoop(ctx); err != nil {
			diverged <- err
			cancel()
		}
	}()
	if r.rb.active() {
		wg.Add(1)
		go func() { defer wg.Done(); r.learnRebuildTarget(ctx) }()
	}
	r.live.running.Store(true)
	defer r.live.running.Store(false)
	err := r.applyLoop(ctx)
	cancel()
	wg.Wait()
	select {
	case derr := <-diverged:
		if err == nil {
			err = derr
		}
	default:
	}
	// The store is closed after Run: a snapshot being written finishes
	// first.
	if serr := r.waitSnapshot(); err == nil {
		err = serr
	}
	return err
}

// waitSnapshot waits for the background snapshot write, if any, and
// returns its error (apply loop only).
func (r *Replica) waitSnapshot() error {
	if r.snapshotDone == nil {
		return nil
	}
	<-r.snapshotDone
	r.snapshotDone = nil
	if r.snapshotErr != nil {
		return fmt.Errorf("storing the snapshot at %d: %w", r.lastSnapshot, r.snapshotErr)
	}
	return nil
}

// snapshotInBackground encodes and stores a captured snapshot beside the
// apply loop, which goes on applying. Crash safety: the batches up to the
// snapshot's index were committed to the log before this starts, and the
// store drops them only in the transaction that stores the snapshot, so
// a crash at any point leaves "snapshot + logged batches" exact.
func (r *Replica) snapshotInBackground(s *ledgerSnapshot, digest [32]byte) {
	done := make(chan struct{})
	r.snapshotDone, r.snapshotErr = done, nil
	go func() {
		defer close(done)
		start := time.Now()
		b, err := s.encode()
		if err == nil {
			b = sealSnapshot(s.Index, digest, b)
			err = r.store.Commit(&Commit{Snapshot: b, SnapshotIndex: s.Index})
		}
		if err != nil {
			r.log.Error("storing a snapshot", "index", s.Index, "err", err)
			r.snapshotErr = err
			return
		}
		r.prom.Snapshot.Observe(time.Since(start).Seconds())
		r.log.Debug("stored a snapshot", "index", s.Index, "bytes", len(b), "ms", time.Since(start).Milliseconds())
	}()
}

// applyLoop is the follower: fetch, verify, apply, commit, notify. It is
// a two-stage pipeline: followLoop fetches the next finalized page and
// decodes and verifies its operations (pure work, no ledger access) while
// this loop applies and commits the previous one.
func (r *Replica) applyLoop(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One page waits while one is applied: the follower runs at most two
	// pages ahead of the ledger, bounding the memory it holds.
	pages := make(chan []prepared, 1)
	after, prev, _ := r.ledger.Index()
	done := make(chan struct{})
	go func() { defer close(done); r.followLoop(ctx, after, prev, pages) }()
	defer func() { cancel(); <-done }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case preps := <-pages:
			if err := r.applyPage(preps); err != nil {
				return err
			}
			r.checkRebuilt()
		}
	}
}

// followLoop fetches finalized pages after (after, prev), the tip it
// handed on last, and sends them prepared (decoded, signatures checked)
// in order until ctx ends.
func (r *Replica) followLoop(ctx context.Context, after uint64, prev [32]byte, out chan<- []prepared) {
	backoff := r.cfg.PollInterval
	var lastFetch time.Time
	for ctx.Err() == nil {
		// At most one fetch per PollInterval: each page costs a BLS
		// verification of its finality proof (about a millisecond of
		// CPU); under load, what finalizes during the gap shares one.
		if wait := r.cfg.PollInterval - time.Since(lastFetch); wait > 0 {
			sleep(ctx, wait)
		}
		lastFetch = time.Now()
		// A long-poll: the node answers when it finalizes something.
		bs, err := r.seq.Finalized(ctx, after, prev, r.cfg.FollowWait)
		if err == nil {
			err = checkChain(after, prev, bs)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.metrics.PollFailures++
			r.mu.Unlock()
			r.log.Warn("fetching finalized batches", "after", after, "err", err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, r.cfg.PollBackoffMax)
			continue
		}
		r.live.polledOK.Store(time.Now().UnixNano())
		if len(bs) == 0 {
			// A held request answers empty only when its wait ran out:
			// ask again at once. One answered empty much sooner came
			// from a node that does not hold requests (or is stopping):
			// back off as after an error rather than spin.
			if time.Since(lastFetch) < r.cfg.FollowWait/2 {
				sleep(ctx, backoff)
				backoff = min(2*backoff, r.cfg.PollBackoffMax)
			}
			continue
		}
		backoff = r.cfg.PollInterval
		preps := make([]prepared, len(bs))
		for i, b := range bs {
			// Operations this replica verified at intake are not
			// recovered again (they are still pending here: an operation
			// leaves the intake only once applied, after this page).
			preps[i] = prepareBatch(r.cfg.Domain, b, r.cfg.VerifyWorkers, r.in.verified)
		}
		select {
		case out <- preps:
		case <-ctx.Done():
			return
		}
		last := bs[len(bs)-1]
		after, prev = last.Index, last.ChainingHash
		r.prom.Fetched.Set(float64(after))
	}
}

// applyPage applies consecutive verified batches and commits them in one
// transaction (a page is usually one batch; catching up, up to a page of
// them).
func (r *Replica) applyPage(preps []prepared) error {
	select {
	case <-r.snapshotDone: // a background snapshot ended: was it stored?
		if err := r.waitSnapshot(); err != nil {
			return err
		}
	default: // none, or still writing (a nil channel never receives)
	}
	bs := make([]Batch, len(preps))
	for i := range preps {
		bs[i] = preps[i].batch
	}
	applied := make([]*Applied, len(bs))
	r.mu.Lock()
	for i := range preps {
		applied[i] = r.applyPrepared(preps[i])
		r.maybeAttest()
		r.metrics.Applied++
		for _, o := range applied[i].Outcomes {
			r.metrics.OpsApplied++
			if o.Status == "rejected" {
				r.metrics.OpsRejected++
			}
		}
	}
	r.mu.Unlock()

	c := &Commit{Batches: bs}
	for i, a := range applied {
		r.logOps += uint64(len(a.Outcomes))
		r.logBytes += uint64(len(bs[i].Body))
		c.Withdrawals = append(c.Withdrawals, a.Withdrawals...)
		for _, o := range a.Outcomes {
			if o.Authentic && r.in.isPending(o.ID) {
				c.OutboxDone = append(c.OutboxDone, o.ID)
			}
		}
		if a.BatchError != "" {
			r.log.Warn("skipped a batch that is not an operation list", "index", a.Index, "err", a.BatchError)
		}
	}
	index := r.ledger.index
	var snap *ledgerSnapshot
	var snapDigest [32]byte
	if index-r.lastSnapshot >= r.cfg.SnapshotEvery || r.logOps >= r.cfg.SnapshotOps || r.logBytes >= r.cfg.SnapshotLogBytes {
		// Only the apply loop writes the ledger, so it can capture it
		// without blocking readers. The capture is cheap; encoding and
		// writing it (~10 MB, a few hundred ms) happen in the background
		// once this page is committed, so applying does not stall.
		// The previous snapshot is done long before (a snapshot's worth
		// of batches later); waiting for it keeps one write at a time.
		if err := r.waitSnapshot(); err != nil {
			return err
		}
		s, err := r.ledger.captureSnapshot()
		if err != nil {
			return fmt.Errorf("snapshot at %d: %w", index, err)
		}
		// Recorded with the snapshot: a restore recomputes it and compares.
		snap, snapDigest = s, r.stateDigestAt(index)
	}
	start := time.Now()
	if err := r.store.Commit(c); err != nil {
		r.log.Error("committing applied batches", "index", index, "err", err)
		return fmt.Errorf("committing batches up to %d: %w", index, err)
	}
	if snap != nil {
		r.lastSnapshot, r.logOps, r.logBytes = index, 0, 0
		r.snapshotInBackground(snap, snapDigest)
	}
	for _, a := range applied {
		r.outcomes.batch(a)
	}
	r.outcomes.maybeSummary(r.cfg.Now(), index)
	r.mu.Lock()
	r.metrics.CommitSeconds += time.Since(start).Seconds()
	close(r.appliedCh)
	r.appliedCh = make(chan struct{})
	r.mu.Unlock()

	for _, a := range applied {
		for _, o := range a.Outcomes {
			if o.ID == ([32]byte{}) || !o.Authentic {
				continue
			}
			r.in.applied(o.ID)
			r.notify(o)
		}
	}
	r.afterApply(preps, applied)
	return nil
}

func (r *Replica) notify(o OpOutcome) {
	r.wmu.Lock()
	ws := r.waiters[o.ID]
	delete(r.waiters, o.ID)
	r.wmu.Unlock()
	for _, w := range ws {
		w <- o // buffered 1, one send per channel
	}
}

// addWaiter registers interest in an operation's outcome.
func (r *Replica) addWaiter(id [32]byte) chan OpOutcome {
	ch := make(chan OpOutcome, 1)
	r.wmu.Lock()
	r.waiters[id] = append(r.waiters[id], ch)
	r.wmu.Unlock()
	return ch
}

func (r *Replica) dropWaiter(id [32]byte, ch chan OpOutcome) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	ws := r.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(r.waiters, id)
	} else {
		r.waiters[id] = ws
	}
}

// waitIndex waits until index n is applied, for at most d.
func (r *Replica) waitIndex(ctx context.Context, n uint64, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.RLock()
		ok, ch := r.ledger.index >= n, r.appliedCh
		r.mu.RUnlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Metrics returns a copy of the counters.
func (r *Replica) Metrics() Metrics {
	r.mu.RLock()
	m := r.metrics
	r.mu.RUnlock()
	r.in.mu.Lock()
	m.SigsReused = r.in.reused
	r.in.mu.Unlock()
	return m
}

// Applied returns the applied index.
func (r *Replica) Applied() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ledger.index
}

// stateDigestAt is the ledger's digest, which must be at index (apply
// loop only: no batch is applied meanwhile).
func (r *Replica) stateDigestAt(index uint64) [32]byte {
	d, _ := r.ledger.Digest()
	if r.ledger.index != index {
		panic("replica: digest asked at another index than the applied one")
	}
	return d
}

// StateDigest returns the state digest at the applied index.
func (r *Replica) StateDigest() (index uint64, digest [32]byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, _ := r.ledger.Digest()
	return r.ledger.index, d
}

// Close closes the store. Call it after Run returned.
func (r *Replica) Close() error { return r.store.Close() }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Handler returns the HTTP API. The routes are built once, on the first
// call: a caller may ask for the handler per request (the replica command
// does, to serve whichever replica runs after a rebuild), and building the
// router costs more than serving most requests.
func (r *Replica) Handler() http.Handler {
	r.handlerOnce.Do(func() { r.handler = r.routes() })
	return r.handler
}
