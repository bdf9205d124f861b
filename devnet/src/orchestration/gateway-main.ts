// The devnet gateway process: `node gateway-main.ts --listen 198.18.0.1:443 --domain <d> --routes <file>`,
// started by `devnet up` inside the hub namespace. The routes file maps app ids to node addresses
// ({"0x…": "198.18.0.11"}) and is re-read when it changes, so `add-node` needs no restart. With
// `--faults <file>` ({"connectDelayMs": n}, re-read on change) every new connection waits n ms before it
// is routed: the soak's gateway-delay fault (soak/faults/network.ts).
import { readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import pino from "pino";
import { startSniGateway } from "./gateway.ts";

const { values } = parseArgs({
  options: {
    listen: { type: "string" },
    domain: { type: "string" },
    routes: { type: "string" },
    faults: { type: "string" },
  },
});
const logger = pino({ name: "devnet-gateway" });
if (!values.listen || !values.domain || !values.routes) {
  logger.fatal("usage: gateway-main.ts --listen host:port --domain <domain> --routes <file>");
  process.exit(2);
}
const [host, portText] = [
  values.listen.slice(0, values.listen.lastIndexOf(":")),
  values.listen.split(":").at(-1),
];
const routesFile = values.routes;
let cached: { mtimeMs: number; routes: Map<string, string> } | undefined;

async function routes(): Promise<Map<string, string>> {
  const { mtimeMs } = await stat(routesFile);
  if (cached?.mtimeMs === mtimeMs) return cached.routes;
  const json = JSON.parse(await readFile(routesFile, "utf8")) as Record<string, string>;
  const map = new Map(Object.entries(json).map(([appId, address]) => [appId.toLowerCase(), address]));
  cached = { mtimeMs, routes: map };
  return map;
}

const faultsFile = values.faults;
let faults: { mtimeMs: number; connectDelayMs: number } | undefined;

/** The delay the faults file asks for (0 without one, or while it is missing or unreadable). */
async function connectDelayMs(): Promise<number> {
  if (faultsFile === undefined) return 0;
  try {
    const { mtimeMs } = await stat(faultsFile);
    if (faults?.mtimeMs !== mtimeMs) {
      const json = JSON.parse(await readFile(faultsFile, "utf8")) as { connectDelayMs?: unknown };
      const delay = Number(json.connectDelayMs ?? 0);
      faults = { mtimeMs, connectDelayMs: Number.isFinite(delay) && delay > 0 ? delay : 0 };
    }
    return faults.connectDelayMs;
  } catch {
    return 0;
  }
}

const gateway = await startSniGateway({
  host,
  port: Number(portText),
  domain: values.domain,
  route: async (appId) => {
    const delay = await connectDelayMs();
    if (delay > 0) await sleep(delay);
    return (await routes()).get(appId);
  },
  logger,
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    logger.info({ stats: gateway.stats() }, "stopping");
    void gateway.close().then(() => process.exit(0));
  });
}
