// `npm run devnet` starts the dashboard for the devnet it runs and prints its URL. The dashboard is a
// convenience there: when it cannot start (its port is taken, say) the devnet runs on without it.

import { processIo } from "../owner/io.ts";
import { DEFAULT_PORT } from "./server.ts";
import { startDashboard } from "./start.ts";

/** Starts the devnet's dashboard until SIGINT/SIGTERM; reports its URL (or why not) through `say`. */
export async function startDevnetDashboard(say: (line: string) => void, port = DEFAULT_PORT): Promise<void> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const server = await startDashboard(processIo(), { devnet: true, port }, controller.signal);
    say(`dashboard: ${server.url} (read-only)`);
  } catch (error) {
    controller.abort();
    say(
      `dashboard not started: ${(error as Error).message.split("\n")[0]} (try \`attestmesh dashboard --devnet --port 0\`)`,
    );
  }
}
