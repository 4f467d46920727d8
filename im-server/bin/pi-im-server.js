#!/usr/bin/env node
// Runs the built server (npm run build -w im-server) with plain node, no tsx.
import '../dist/main.js';
