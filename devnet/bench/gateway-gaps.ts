// How long the gateway path stops carrying traffic while direct UDP is blocked and the auto transport
// keeps testing it (root, under the devnet lock; tears the devnet down at the end):
//
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/gateway-gaps.ts --seconds 40
//
// A 3-node devnet with `--transport auto --block-udp`, a direct test 2 s after each failure (doubling) as
// in test/e2e/gateway.test.ts; once every peer has handshaken through the gateway, every node sends a
// small UDP datagram to every other node's mesh IP each 50 ms for --seconds. Prints, per directed pair,
// how many arrived and the longest time nothing did, and how many direct tests failed meanwhile.
import { parseArgs } from "node:util";
import { getJson } from "@attestmesh/devnet/orchestration/health.ts";
import { cli, eventually } from "../../test/e2e/helpers/devnet.ts";
import { meshStream } from "../../test/e2e/helpers/meshStream.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "40" } } });
const seconds = Number(values.seconds);
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600)
  throw new Error(`--seconds must be a whole number from 1 to 600, not ${values.seconds}`);

const env = { ...process.env, ATTESTMESH_DIRECT_RETRY_SECONDS: "2", ATTESTMESH_WG_KEEPALIVE_SECONDS: "5" };

interface NodeEntry {
  name: string;
  netns: string;
  meshIp: string | null;
  healthUrl: string;
}
interface PeerHealth {
  latestHandshake: number;
  transport?: string;
  transportDetail?: { directFailures: number };
}

const peersOf = async (node: NodeEntry) =>
  ((await getJson(node.healthUrl, 2_000)).body as { peers: PeerHealth[] }).peers;

try {
  const { nodes } = JSON.parse(
    await cli(["devnet", "up", "--detach", "--json", "--nodes", "3", "--transport", "auto", "--block-udp"], {
      env,
    }),
  ) as { nodes: NodeEntry[] };
  const failures = async () =>
    (await Promise.all(nodes.map(peersOf)))
      .flat()
      .reduce((n, p) => n + (p.transportDetail?.directFailures ?? 0), 0);
  await eventually("every peer handshaken through the gateway", async () =>
    (await Promise.all(nodes.map(peersOf))).every(
      (peers) => peers.length === 2 && peers.every((p) => p.transport === "gateway" && p.latestHandshake > 0),
    ),
  );
  const failedBefore = await failures();
  const legs = await meshStream(nodes, { port: 7200, intervalMs: 50, durationMs: seconds * 1000 });
  const failed = (await failures()) - failedBefore;
  console.log(`| leg | arrived | longest gap, ms |\n| --- | ---: | ---: |`);
  for (const leg of legs)
    console.log(`| ${leg.from} → ${leg.to} | ${leg.received}/${leg.sent} | ${leg.longestGapMs} |`);
  const worst = Math.max(...legs.map((l) => l.longestGapMs));
  const lost = legs.reduce((n, l) => n + l.sent - l.received, 0);
  const sent = legs.reduce((n, l) => n + l.sent, 0);
  console.log(
    `\nlongest gap ${worst} ms; ${lost} of ${sent} lost; ${failed} direct tests failed during ${seconds} s`,
  );
} finally {
  await cli(["devnet", "down"], { env }).catch(() => {});
}
