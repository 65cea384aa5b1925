/**
 * `planetary transporter inputs|outputs SPEC`: the in-pod transporter, reachable from the
 * compiled `planetary` binary so that `planetary serve` can run its own transporter on this
 * machine without a second binary.
 *
 * @module
 */
import type { Command } from "../command.ts";

/** The `transporter` command (used inside task pods; not for people). */
export const transporterCommand: Command = {
  name: "transporter",
  summary: "(inside task pods) download inputs or upload outputs",
  usage: "Usage: planetary transporter inputs|outputs <spec.json>\n",
  async run(argv: string[]): Promise<number> {
    // loaded only here: `planetary serve` and the client verbs never need the transporter
    const { main } = await import("../../transporter/main.ts");
    return await main(argv);
  },
};
