#!/usr/bin/env node
// The `attestmesh` executable. Node strips the types of main.ts as it imports it.
import { runCli } from "./main.ts";

process.exitCode = await runCli(process.argv);
