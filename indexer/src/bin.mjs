#!/usr/bin/env node
// `attestmesh-indexer`: Node (>= 22.18) runs the TypeScript sources directly.
import { main } from "./main.ts";

await main();
