#!/usr/bin/env node
// Compiles bridge/contracts/*.sol with the pinned solc from npm and writes
// build/<Contract>.abi (JSON) and build/<Contract>.bin (hex) for each
// contract. With --check it compiles and compares instead of writing, and
// exits 1 if any committed artifact is stale or missing: `make test` runs
// it so the Go bindings never drift from the Solidity source.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const PINNED = '0.8.30';
const here = __dirname;
const srcDir = path.join(here, 'contracts');
const outDir = path.join(here, 'build');
const check = process.argv.includes('--check');

if (!solc.version().startsWith(PINNED + '+')) {
  console.error(`solc ${solc.version()} is installed, ${PINNED} is pinned: run npm ci in bridge/`);
  process.exit(1);
}

const sources = {};
for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: 'prague',
    optimizer: { enabled: true, runs: 200 },
    // No metadata hash: the bytecode then depends on the source and the
    // settings only, not on file paths or comments' whitespace elsewhere.
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of out.errors || []) {
  console.error(e.formattedMessage);
  if (e.severity === 'error') failed = true;
}
if (failed) process.exit(1);

const artifacts = {};
for (const file of Object.keys(out.contracts).sort()) {
  for (const name of Object.keys(out.contracts[file]).sort()) {
    if (!fs.existsSync(path.join(srcDir, name + '.sol'))) continue; // interfaces
    const c = out.contracts[file][name];
    artifacts[name + '.abi'] = JSON.stringify(c.abi, null, 1) + '\n';
    artifacts[name + '.bin'] = c.evm.bytecode.object + '\n';
  }
}

let stale = [];
for (const [f, text] of Object.entries(artifacts)) {
  const p = path.join(outDir, f);
  if (check) {
    if (!fs.existsSync(p) || fs.readFileSync(p, 'utf8') !== text) stale.push(f);
  } else {
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(p, text);
  }
}
if (check) {
  if (stale.length > 0) {
    console.error(`bridge/build is stale (${stale.join(', ')}): run 'node bridge/build.js' and commit bridge/build`);
    process.exit(1);
  }
  console.log(`bridge: build/ matches solc ${PINNED} output for ${Object.keys(sources).join(', ')}`);
} else {
  console.log(`bridge: wrote ${Object.keys(artifacts).join(', ')} (solc ${solc.version()})`);
}
