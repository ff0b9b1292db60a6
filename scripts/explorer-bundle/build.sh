#!/usr/bin/env bash
# Rebuilds replica/explorer/static/noble.js from the exact npm packages
# pinned in package.json and package-lock.json (npm ci), bundled and
# minified by esbuild into one file the explorer loads with a <script>
# tag. The result is committed: serving the explorer needs no Node.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
out=../../replica/explorer/static/noble.js
{
	echo "/* @noble/curves $(node -p 'require("./node_modules/@noble/curves/package.json").version') and @noble/hashes $(node -p 'require("./node_modules/@noble/hashes/package.json").version') (MIT, Paul Miller), bundled by scripts/explorer-bundle/build.sh */"
	npx esbuild entry.js --bundle --minify --format=iife --global-name=Noble --target=es2020
} > "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"
