package aggregator

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
	blst "github.com/supranational/blst/bindings/go"

	"github.com/seqbook/seqbook/client"
	"github.com/seqbook/seqbook/client/cluster"
)

// A second verifier that shares no code with the aggregator's own path:
// the EIP-712 digest is recomputed from the proof's fields by go-ethereum's
// generic typed-data hasher (types typed in again from DESIGN §6), and the
// aggregate is checked with blst against the sum of the signers' keys.

const dstSignature = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"

var (
	gethBalanceType = []apitypes.Type{
		{Name: "app", Type: "string"}, {Name: "account", Type: "address"}, {Name: "token", Type: "string"},
		{Name: "balance", Type: "uint256"}, {Name: "index", Type: "uint64"},
	}
	gethWithdrawalType = []apitypes.Type{
		{Name: "app", Type: "string"}, {Name: "id", Type: "bytes32"}, {Name: "trader", Type: "address"},
		{Name: "token", Type: "string"}, {Name: "amount", Type: "uint256"}, {Name: "recipient", Type: "address"},
		{Name: "index", Type: "uint64"},
	}
	gethDomainType = []apitypes.Type{{Name: "name", Type: "string"}, {Name: "version", Type: "string"}, {Name: "chainId", Type: "uint256"}}
)

func gethDigest(chainID uint64, primary string, fields []apitypes.Type, msg apitypes.TypedDataMessage) ([]byte, error) {
	td := apitypes.TypedData{
		Types:       apitypes.Types{"EIP712Domain": gethDomainType, primary: fields},
		PrimaryType: primary,
		Domain:      apitypes.TypedDataDomain{Name: "seqbook", Version: "1", ChainId: math.NewHexOrDecimal256(int64(chainID))},
		Message:     msg,
	}
	d, _, err := apitypes.TypedDataAndHash(td)
	return d, err
}

// blstVerifyQuorum checks sig over digest by the sum of the signers' keys.
func blstVerifyQuorum(c *cluster.Cluster, digest []byte, sigHex string, signers []string, threshold int) error {
	if threshold != c.ReplicaThreshold() {
		return fmt.Errorf("threshold %d, the cluster's is %d", threshold, c.ReplicaThreshold())
	}
	if len(signers) < threshold {
		return fmt.Errorf("%d signers, need %d", len(signers), threshold)
	}
	seen := map[string]bool{}
	var agg blst.P1Aggregate
	for _, id := range signers {
		i, ok := c.ReplicaIndex(id)
		if !ok || seen[id] {
			return fmt.Errorf("signer %q unknown or repeated", id)
		}
		seen[id] = true
		pk := new(blst.P1Affine).Uncompress(c.ReplicaKey(i).Bytes())
		if pk == nil || !agg.Add(pk, true) {
			return fmt.Errorf("blst refuses the key of %s", id)
		}
	}
	raw, err := hex.DecodeString(strings.TrimPrefix(sigHex, "0x"))
	if err != nil {
		return err
	}
	sig := new(blst.P2Affine).Uncompress(raw)
	if sig == nil {
		return errors.New("blst cannot decode the signature")
	}
	if !sig.Verify(true, agg.ToAffine(), true, digest, []byte(dstSignature)) {
		return errors.New("blst: aggregate signature does not verify")
	}
	return nil
}

// indepVerifyBalance is the whole independent check of a balance proof.
func indepVerifyBalance(c *cluster.Cluster, p *client.BalanceProof) error {
	if p.App != c.App {
		return fmt.Errorf("app %q", p.App)
	}
	d, err := gethDigest(c.ChainID, "Balance", gethBalanceType, apitypes.TypedDataMessage{
		"app": p.App, "account": p.Address, "token": p.Token, "balance": p.BalanceUnits, "index": fmt.Sprint(p.Index),
	})
	if err != nil {
		return err
	}
	if "0x"+hex.EncodeToString(d) != p.Digest {
		return fmt.Errorf("digest %s, recomputed 0x%x", p.Digest, d)
	}
	return blstVerifyQuorum(c, d, p.Signature, p.Signers, p.Threshold)
}

// indepVerifyWithdrawal is the whole independent check of a withdrawal
// proof.
func indepVerifyWithdrawal(c *cluster.Cluster, p *client.WithdrawalProof) error {
	if p.App != c.App {
		return fmt.Errorf("app %q", p.App)
	}
	d, err := gethDigest(c.ChainID, "Withdrawal", gethWithdrawalType, apitypes.TypedDataMessage{
		"app": p.App, "id": p.ID, "trader": p.Trader, "token": p.Token, "amount": p.AmountUnits,
		"recipient": p.Recipient, "index": fmt.Sprint(p.Index),
	})
	if err != nil {
		return err
	}
	if "0x"+hex.EncodeToString(d) != p.Digest {
		return fmt.Errorf("digest %s, recomputed 0x%x", p.Digest, d)
	}
	return blstVerifyQuorum(c, d, p.Signature, p.Signers, p.Threshold)
}
