// Checks seqbook's golden quorum proofs with code that shares nothing with
// seqbook's Go: ethers recomputes the EIP-712 digest from the proof's
// fields, noble-curves checks every replica's proof of possession and the
// aggregate BLS signature against the sum of the signers' G1 keys. It is
// also a worked example of docs/verification.md in JavaScript.
//
//   cd testdata/proofcheck && npm ci && node check.mjs
//
// It writes its verdict to ../vectors/proof_verdicts.json (which `go test
// ./aggregator` reads, so Go tests never need node) and exits non-zero if a
// vector does not verify or a tampered copy does.
//
// The types are typed in again from DESIGN §6 on purpose: they are not read
// from the vector, so a disagreement shows up as a digest mismatch.

import { readFileSync, writeFileSync } from "node:fs";
import { TypedDataEncoder, getAddress } from "ethers";
import { bls12_381 } from "@noble/curves/bls12-381.js";

const vectors = new URL("../vectors/", import.meta.url);
const VECTORS = ["proof_balance.json", "proof_withdrawal.json"];

const TYPES = {
  Balance: [
    { name: "app", type: "string" },
    { name: "account", type: "address" },
    { name: "token", type: "string" },
    { name: "balance", type: "uint256" },
    { name: "index", type: "uint64" },
  ],
  Withdrawal: [
    { name: "app", type: "string" },
    { name: "id", type: "bytes32" },
    { name: "trader", type: "address" },
    { name: "token", type: "string" },
    { name: "amount", type: "uint256" },
    { name: "recipient", type: "address" },
    { name: "index", type: "uint64" },
  ],
};

// Ethereum/IETF BLS: G1 public keys, G2 signatures ("long signatures" in
// noble), proof-of-possession ciphersuite. noble's default DST is the _NUL_
// suite, so the DSTs are passed explicitly.
const bls = bls12_381.longSignatures;
const DST_SIG = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
const DST_POP = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

const bytes = (h) => {
  if (typeof h !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(h)) throw new Error(`not 0x hex: ${h}`);
  return Uint8Array.from(Buffer.from(h.slice(2), "hex"));
};

// Base units → the decimal text seqbook writes (6 decimals, no trailing
// zeros): the proof's human-readable amount must say the same as the
// signed integer.
function formatUnits(units) {
  const v = BigInt(units);
  const whole = v / 1000000n;
  const frac = (v % 1000000n).toString().padStart(6, "0").replace(/0+$/, "");
  return frac === "" ? whole.toString() : `${whole}.${frac}`;
}

// The signed message a proof describes.
function messageOf(kind, p) {
  if (kind === "Balance") {
    if (p.balance !== formatUnits(p.balance_units)) throw new Error(`balance ${p.balance} != units ${p.balance_units}`);
    return { app: p.app, account: getAddress(p.address), token: p.token, balance: p.balance_units, index: String(p.index) };
  }
  if (p.amount !== formatUnits(p.amount_units)) throw new Error(`amount ${p.amount} != units ${p.amount_units}`);
  return {
    app: p.app, id: p.id, trader: getAddress(p.trader), token: p.token, amount: p.amount_units,
    recipient: getAddress(p.recipient), index: String(p.index),
  };
}

// verify returns null when the proof holds against the cluster file, or
// the reason it does not. Steps as docs/verification.md lists them.
function verify(cluster, kind, p, chainId = cluster.chain_id) {
  try {
    // 1. The proof is about this cluster's app.
    if (p.app !== cluster.app) return `app ${p.app} is not the cluster's ${cluster.app}`;
    // 2. Recompute the digest from the fields (EIP-712, seqbook domain).
    const domain = { name: "seqbook", version: "1", chainId };
    const digest = TypedDataEncoder.hash(domain, { [kind]: TYPES[kind] }, messageOf(kind, p));
    if (digest !== p.digest.toLowerCase()) return `digest ${p.digest} but the fields hash to ${digest}`;
    // 3. Threshold: at least a strict majority of the cluster's replicas,
    //    whatever the proof claims, and that many distinct known signers.
    const n = cluster.replicas.length;
    const need = Math.floor(n / 2) + 1;
    if (!(p.threshold >= need)) return `threshold ${p.threshold} below the cluster's ${need}`;
    if (new Set(p.signers).size !== p.signers.length) return "a signer is listed twice";
    if (p.signers.length < p.threshold) return `${p.signers.length} signers, threshold ${p.threshold}`;
    const byId = new Map(cluster.replicas.map((r) => [r.id, r]));
    // 4. Keys: each replica's proof of possession (checked once per
    //    cluster file in real use), then the sum of the signers' keys.
    for (const r of cluster.replicas) {
      const pk = bytes(r.bls_pubkey);
      if (!bls.verify(bytes(r.bls_pop), bls.hash(pk, DST_POP), pk)) return `replica ${r.id}: proof of possession does not verify`;
    }
    const keys = [];
    for (const id of p.signers) {
      const r = byId.get(id);
      if (!r) return `signer ${id} is not a replica of the cluster`;
      keys.push(bytes(r.bls_pubkey));
    }
    const aggPk = bls.aggregatePublicKeys(keys);
    // 5. One pairing check of the aggregate signature on the digest.
    if (!bls.verify(bytes(p.signature), bls.hash(bytes(digest), DST_SIG), aggPk)) return "aggregate BLS signature does not verify";
    return null;
  } catch (e) {
    return `error: ${e.message}`;
  }
}

// Re-derive the digest after an edit, so a tampered copy is consistent in
// every field and only the signature can catch it.
function redigest(cluster, kind, p) {
  const domain = { name: "seqbook", version: "1", chainId: cluster.chain_id };
  p.digest = TypedDataEncoder.hash(domain, { [kind]: TYPES[kind] }, messageOf(kind, p));
  return p;
}

function tamperings(cluster, kind, proof) {
  const copy = () => JSON.parse(JSON.stringify(proof));
  const valueField = kind === "Balance" ? "balance" : "amount";
  const cases = [
    ["value + 1 base unit (digest recomputed)", () => {
      const p = copy();
      p[`${valueField}_units`] = (BigInt(p[`${valueField}_units`]) + 1n).toString();
      p[valueField] = formatUnits(p[`${valueField}_units`]);
      return [redigest(cluster, kind, p)];
    }],
    ["index + 1 (a replayed proof relabelled, digest recomputed)", () => {
      const p = copy();
      p.index += 1;
      return [redigest(cluster, kind, p)];
    }],
    ["the last signer swapped for a non-signer", () => {
      const p = copy();
      const out = p.signers.pop();
      p.signers.push(p.non_signers.shift());
      p.non_signers.push(out);
      return [p];
    }],
    ["one signer dropped and the threshold lowered to match", () => {
      const p = copy();
      p.signers = p.signers.slice(1);
      p.threshold = p.signers.length;
      return [p];
    }],
    ["signed under another chain id", () => [copy(), 1]],
    ["digest field swapped for another message's", () => {
      const p = copy();
      p.digest = "0x" + "11".repeat(32);
      return [p];
    }],
  ];
  return cases.map(([name, make]) => {
    const [p, chainId] = make();
    const reason = verify(cluster, kind, p, chainId ?? cluster.chain_id);
    return { case: name, rejected: reason !== null, reason: reason ?? "ACCEPTED" };
  });
}

const version = (pkg) => JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))).version;
const results = [];
let failed = false;
for (const name of VECTORS) {
  const v = JSON.parse(readFileSync(new URL(name, vectors)));
  const kind = "address" in v.proof ? "Balance" : "Withdrawal";
  const reason = verify(v.cluster, kind, v.proof);
  const tampered = tamperings(v.cluster, kind, v.proof);
  const ok = reason === null && tampered.every((t) => t.rejected);
  failed ||= !ok;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}: ${reason ?? "valid"}; ${tampered.filter((t) => t.rejected).length}/${tampered.length} tampered copies rejected`);
  for (const t of tampered) if (!t.rejected) console.log(`     accepted a tampered copy: ${t.case}`);
  // The intermediate values of docs/verification.md's worked example.
  const domain = { name: "seqbook", version: "1", chainId: v.cluster.chain_id };
  const byId = new Map(v.cluster.replicas.map((r) => [r.id, r]));
  const aggPk = bls.aggregatePublicKeys(v.proof.signers.map((id) => bytes(byId.get(id).bls_pubkey)));
  results.push({
    vector: name, kind, digest: v.proof.digest, signature: v.proof.signature,
    valid: reason === null, reason: reason ?? "valid",
    worked: {
      domain_separator: TypedDataEncoder.hashDomain(domain),
      struct_hash: TypedDataEncoder.hashStruct(kind, { [kind]: TYPES[kind] }, messageOf(kind, v.proof)),
      signers_aggregate_public_key: "0x" + Buffer.from(aggPk.toBytes(true)).toString("hex"),
    },
    tampered,
  });
}
writeFileSync(new URL("proof_verdicts.json", vectors), JSON.stringify({
  about: "Verdicts of testdata/proofcheck/check.mjs (ethers + noble-curves, no seqbook code) on the golden proofs. Rerun: cd testdata/proofcheck && npm ci && node check.mjs",
  checker: "testdata/proofcheck/check.mjs",
  libraries: { "@noble/curves": version("@noble/curves"), ethers: version("ethers") },
  results,
}, null, 2) + "\n");
console.log("wrote testdata/vectors/proof_verdicts.json");
process.exit(failed ? 1 : 0);
