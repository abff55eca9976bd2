#!/usr/bin/env node
// The installed `strata` command; the compiled CLI lives in dist/.
import "../dist/main.js";
