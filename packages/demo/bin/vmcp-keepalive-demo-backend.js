#!/usr/bin/env node
import "../dist/demo-backend.js";
