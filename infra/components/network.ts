import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { isIpLiteral, parseCidr } from "../net";
import { NetworkOptions, renderNetworkScript, renderNetworkUndo } from "../render/network";
import { Connection, childOpts, remoteStep } from "./step";

export interface NetworkArgs extends NetworkOptions {
  pi: string;
  connection: pulumi.Input<Connection>;
  /** false: leave the OS's network alone (e.g. QEMU's user-mode NIC); nothing is created. */
  manage: boolean;
  /** The address Pulumi connects to; a static address elsewhere is refused unless allowed. */
  connectHost: string;
}

/** Static address (or DHCP) on the Pi's wired interface, on whatever network stack the OS runs. */
export class Network extends pulumi.ComponentResource {
  readonly apply?: remote.Command;
  readonly address: pulumi.Output<string>;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pi-im:infra:Network", name, {}, opts);
    const { pi, connection, manage, connectHost, ...options } = args;
    const want = options.mode === "static" ? parseCidr(options.address ?? "")?.address : undefined;
    if (manage && want && isIpLiteral(connectHost) && want !== connectHost && !options.allowAddressChange) {
      throw new Error(
        `Network ${name}: ${options.address} would cut off ${connectHost}, the address pulumi connects through. ` +
          `Set pi-im:network.allowAddressChange true for this change, then point the Pi's host at ${want}.`,
      );
    }
    if (manage) {
      this.apply = remoteStep(`${pi}-network`, { connection, script: renderNetworkScript(options), undo: renderNetworkUndo(options.interface) }, childOpts(this, opts));
    }
    this.address = pulumi.output(manage ? (options.mode === "static" ? options.address ?? "" : "dhcp") : "unmanaged");
    this.registerOutputs({ managed: manage, interface: options.interface, address: this.address, stack: options.stack });
  }
}
