#!/usr/bin/env node
import "../dist/demo-vmcp.js";
