package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/seqbook/seqbook/aggregator"
	"github.com/seqbook/seqbook/client/cluster"
)

// The tutorial's "Signature Aggregation and Verification": an aggregator
// asks every step-4 instance for the same balance at the same applied
// index, checks each BLS signature, and combines those that agree into
// one signature with the list of signers. It is the full system's
// aggregator (package aggregator) over a cluster whose replicas are the
// step-4 instances.
//
// Where the keys come from is the tutorial's simplification: at start the
// aggregator asks each instance for its key (GET /identity) and keeps it
// only if the instance proves it holds the secret (the proof of
// possession), then pins it. The full system takes the keys from a cluster
// file distributed out of band instead of from the replicas themselves.

// identityBytesMax bounds an /identity answer (a few hundred bytes).
const identityBytesMax = 16 << 10

// decodeIdentity reads an /identity answer strictly.
func decodeIdentity(body []byte) (*identity, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var id identity
	if err := dec.Decode(&id); err != nil {
		return nil, fmt.Errorf("malformed identity: %w", err)
	}
	if dec.More() {
		return nil, errors.New("malformed identity: data after the JSON object")
	}
	if id.ID == "" || id.App == "" || id.BLSPubkey == "" || id.BLSPop == "" {
		return nil, errors.New("identity lacks id, app, bls_pubkey or bls_pop")
	}
	return &id, nil
}

// fetchIdentity asks one instance who it is, retrying until ctx ends (the
// instances may still be starting).
func fetchIdentity(ctx context.Context, hc *http.Client, peer string) (*identity, error) {
	var last error
	for {
		id, err := getIdentity(ctx, hc, peer)
		if err == nil {
			return id, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", peer, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func getIdentity(ctx context.Context, hc *http.Client, peer string) (*identity, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peer+"/identity", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, identityBytesMax+1))
	if err != nil {
		return nil, err
	}
	if len(body) > identityBytesMax || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /identity: HTTP %d", resp.StatusCode)
	}
	return decodeIdentity(body)
}

// members builds the cluster the aggregator works on: the sequencer nodes
// and chain id of base, and the step-4 instances as its replicas, each with
// the key it proved it holds (cluster.New refuses a key without a valid
// proof of possession, and two instances with one key).
func members(ctx context.Context, base *cluster.Cluster, peers []string) (*cluster.Cluster, error) {
	if len(peers) == 0 {
		return nil, errors.New("--peers lists no instance")
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	f := cluster.File{ChainID: base.ChainID, Nodes: base.Nodes, Aggregator: base.Aggregator, Bridge: base.Bridge}
	for _, p := range peers {
		u, err := url.Parse(p)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("peer %q: want http://host:port", p)
		}
		id, err := fetchIdentity(ctx, hc, "http://"+u.Host)
		if err != nil {
			return nil, err
		}
		if id.ChainID != base.ChainID {
			return nil, fmt.Errorf("peer %s signs for chain %d, the cluster file's is %d", p, id.ChainID, base.ChainID)
		}
		if f.App == "" {
			f.App = id.App
		} else if id.App != f.App {
			return nil, fmt.Errorf("peer %s serves app %q, %s serves %q", p, id.App, peers[0], f.App)
		}
		f.Replicas = append(f.Replicas, cluster.Member{ID: id.ID, HTTP: u.Host, BLSPubkey: id.BLSPubkey, BLSPop: id.BLSPop})
	}
	c, err := cluster.New(f)
	if err != nil {
		return nil, fmt.Errorf("the instances' keys: %w", err)
	}
	return c, nil
}

// aggregatorHandler serves the aggregator's API plus GET /members: the
// cluster file of the instances, for `seqbook verify --cluster`.
func aggregatorHandler(c *cluster.Cluster, log *slog.Logger) (http.Handler, error) {
	agg, err := aggregator.New(c, aggregator.NewHTTPReplicas(c, nil, aggregator.DefaultConfig().AnswerBytesMax), aggregator.DefaultConfig(), log)
	if err != nil {
		return nil, err
	}
	file, err := json.MarshalIndent(c.File, "", "  ")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(file)
	})
	mux.Handle("/", agg.Handler())
	return mux, nil
}
