// The explorer's crypto: BLS12-381 (signatures in G2, public keys in G1,
// as the replicas sign) and keccak-256 for the EIP-712 digest. Exposed as
// the global `Noble` by build.sh.
import { bls12_381 } from "@noble/curves/bls12-381";
import { keccak_256 } from "@noble/hashes/sha3";

export const bls = bls12_381;
export const keccak256 = keccak_256;
