package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
	"github.com/seqbook/seqbook/client/obapi"
)

func init() {
	register(command{
		name:    "verify",
		summary: "verify a balance, withdrawal or state quorum proof offline against a cluster file",
		run:     func(args []string) int { return verifyMain(args, os.Stdin, os.Stdout, os.Stderr) },
	})
}

// proofFileBytesMax bounds what verify reads: a proof is a few KiB.
const proofFileBytesMax = 1 << 20

func verifyMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clusterPath := fs.String("cluster", "", "cluster `FILE` with the replicas' BLS keys (required)")
	allowSingle := fs.Bool("allow-single", false, "exit 0 on one replica's signed /balance answer too (one signature, NOT a quorum)")
	setUsage(fs, "Usage: seqbook verify --cluster FILE PROOF.json   (- or nothing: read stdin)",
		"Checks a quorum proof from the aggregator (balance, withdrawal or state, told apart by its",
		"fields) or one replica's signed /balance answer, trusting only the cluster file:",
		"the EIP-712 digest is recomputed from the fields, the signers must be distinct",
		"replicas reaching the cluster's threshold, and the aggregate BLS signature must",
		"verify on their summed keys. Exit 0 and a \"verified: …\" line, or exit 1 and why not.",
		"One replica's answer is checked too, but exits 1 (one signature is not a quorum:",
		"a script running `verify && pay` must not pay on it) unless --allow-single.",
	)
	if code, done := parseCommandFlags(fs, args, 1, stdout); done {
		return code
	}
	err := func() error {
		if err := requireFlags("cluster", *clusterPath); err != nil {
			return err
		}
		c, err := cluster.Load(*clusterPath)
		if err != nil {
			return err
		}
		doc, err := readProofDoc(fs.Arg(0), stdin)
		if err != nil {
			return err
		}
		line, err := verifyDoc(c, doc)
		if err != nil {
			return fmt.Errorf("not verified: %w", err)
		}
		fmt.Fprintln(stdout, line)
		if strings.Contains(line, singleSignature) && !*allowSingle {
			return errors.New("not a quorum proof: only one replica signed this answer (get a quorum proof with " +
				"'seqbook balance --aggregator HOST:PORT', or pass --allow-single to accept one signature)")
		}
		return nil
	}()
	if err != nil {
		return exitWith(stderr, "verify", err)
	}
	return 0
}

func readProofDoc(path string, stdin io.Reader) ([]byte, error) {
	r, name := stdin, "stdin"
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, proofFileBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > proofFileBytesMax {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a proof", name, proofFileBytesMax)
	}
	return b, nil
}

// verifyDoc checks a proof document of any kind it recognizes and returns
// the one-line account of what it proves.
func verifyDoc(c *cluster.Cluster, doc []byte) (string, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(doc, &keys); err != nil {
		return "", fmt.Errorf("not a JSON object: %w", err)
	}
	if _, one := keys["replica"]; one {
		return verifySignedBalance(c, doc)
	}
	if _, state := keys["state_digest"]; state {
		sp, err := client.ParseStateProof(doc)
		if err != nil {
			return "", err
		}
		if err := client.VerifyStateProof(c, sp); err != nil {
			return "", err
		}
		return fmt.Sprintf("verified: state digest %s at index %d, attested by %s (threshold %d)",
			sp.StateDigest, sp.Index, strings.Join(sp.Signers, ","), sp.Threshold), nil
	}
	kind, bp, wp, err := client.ParseProof(doc)
	if err != nil {
		return "", err
	}
	switch kind {
	case client.KindBalance:
		if err := client.VerifyBalanceProof(c, bp); err != nil {
			return "", err
		}
		return fmt.Sprintf("verified: balance %s %s of %s at index %d, signed by %s (threshold %d)",
			bp.Balance, bp.Token, bp.Address, bp.Index, strings.Join(bp.Signers, ","), bp.Threshold), nil
	case client.KindWithdrawal:
		if err := client.VerifyWithdrawalProof(c, wp); err != nil {
			return "", err
		}
		return fmt.Sprintf("verified: withdrawal %s of %s %s from %s to %s at index %d, signed by %s (threshold %d)",
			wp.ID, wp.Amount, wp.Token, wp.Trader, wp.Recipient, wp.Index, strings.Join(wp.Signers, ","), wp.Threshold), nil
	}
	return "", errors.New("unknown proof kind")
}

// verifySignedBalance checks one replica's GET /balance answer: one
// signature, not a quorum, and says so.
func verifySignedBalance(c *cluster.Cluster, doc []byte) (string, error) {
	var b obapi.Balance
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return "", fmt.Errorf("replica balance answer: %w", err)
	}
	if err := client.VerifyBalanceSignature(c, "", &b); err != nil {
		return "", err
	}
	return fmt.Sprintf("signature valid: balance %s %s of %s at index %d, signed by %s alone (%s; threshold %d)",
		b.Balance, b.Token, b.Address, b.Index, b.Replica, singleSignature, c.ReplicaThreshold()), nil
}

// singleSignature marks the account of an answer one replica signed.
const singleSignature = "one replica, not a quorum"
