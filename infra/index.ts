// pi-im: `pulumi up --stack <site>` turns freshly flashed Pis into the IM private cloud.
// Reads and validates the stack config, then builds the components for every Pi in the fleet.
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./config-load";
import { buildSite } from "./site";
import { srvRecords } from "./render/compose";

const { site, secrets } = loadConfig();
const built = buildSite(site, secrets, { stack: pulumi.getStack() });

export const domain = site.domain;
export const caCertificate = built.tls.caCert;
export const pis = built.pis;
export const endpoints = built.endpoints;
/** Records for the site's DNS zone, so clients find the XMPP ports (STARTTLS, and direct TLS when on). */
export const dnsSrv = srvRecords(site.domain, site.ports);
