// The devnet's RPC proxy process: `node main.ts --upstream http://127.0.0.1:8545 --listen 127.0.0.1:8546`,
// started by `devnet up` so every sidecar has the Hardhat node and these proxies as its pinned providers
// (proxy.ts). Tests switch a running proxy's behaviour through its control path.
import { parseArgs } from "node:util";
import pino from "pino";
import { startRpcProxy } from "./proxy.ts";

const { values } = parseArgs({ options: { upstream: { type: "string" }, listen: { type: "string" } } });
const logger = pino({ name: "devnet-rpc-proxy" });
if (!values.upstream || !values.listen) {
  logger.fatal("usage: main.ts --upstream <http url> --listen host:port");
  process.exit(2);
}
const at = values.listen.lastIndexOf(":");
const proxy = await startRpcProxy({
  upstream: values.upstream,
  host: values.listen.slice(0, at),
  port: Number(values.listen.slice(at + 1)),
  logger,
});
logger.info({ url: proxy.url }, "rpc proxy listening");
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    logger.info({ stats: proxy.stats() }, "stopping");
    void proxy.close().then(() => process.exit(0));
  });
}
