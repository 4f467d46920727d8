// PEP persistence: nodes (with their configuration) and items per account, plus the verified
// XEP-0115 caps cache, in the module's own tables on the shared group commit.
import type { ModuleStore, Storage } from '../../storage/types.js';
import { type NodeConfig } from './config.js';

const MIGRATIONS = [
  `CREATE TABLE pep_nodes (owner TEXT NOT NULL, node TEXT NOT NULL, config TEXT NOT NULL, PRIMARY KEY (owner, node));
   CREATE TABLE pep_items (owner TEXT NOT NULL, node TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
     payload TEXT NOT NULL, PRIMARY KEY (owner, node, id));
   CREATE INDEX pep_items_seq ON pep_items (owner, node, seq);
   CREATE TABLE pep_caps (ver TEXT PRIMARY KEY, features TEXT NOT NULL);`,
];

export interface StoredItem { id: string; payload: string; seq: number }

export class PepStore {
  private readonly m: ModuleStore;
  private readonly s;
  private seq: number;

  constructor(storage: Storage) {
    this.m = storage.moduleStore('pep', MIGRATIONS);
    const db = this.m.db;
    this.s = {
      node: db.prepare('SELECT config FROM pep_nodes WHERE owner = ? AND node = ?').pluck(),
      nodes: db.prepare('SELECT node, config FROM pep_nodes WHERE owner = ? ORDER BY node'),
      countNodes: db.prepare('SELECT count(*) FROM pep_nodes WHERE owner = ?').pluck(),
      putNode: db.prepare('INSERT OR REPLACE INTO pep_nodes VALUES (?, ?, ?)'),
      delNode: db.prepare('DELETE FROM pep_nodes WHERE owner = ? AND node = ?'),
      delNodeItems: db.prepare('DELETE FROM pep_items WHERE owner = ? AND node = ?'),
      putItem: db.prepare('INSERT OR REPLACE INTO pep_items VALUES (?, ?, ?, ?, ?)'),
      delItem: db.prepare('DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?'),
      item: db.prepare('SELECT id, payload, seq FROM pep_items WHERE owner = ? AND node = ? AND id = ?'),
      latest: db.prepare('SELECT id, payload, seq FROM pep_items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?'),
      trim: db.prepare(`DELETE FROM pep_items WHERE owner = ? AND node = ? AND seq NOT IN
        (SELECT seq FROM pep_items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?)`),
      delUserNodes: db.prepare('DELETE FROM pep_nodes WHERE owner = ?'),
      delUserItems: db.prepare('DELETE FROM pep_items WHERE owner = ?'),
      caps: db.prepare('SELECT features FROM pep_caps WHERE ver = ?').pluck(),
      putCaps: db.prepare('INSERT OR REPLACE INTO pep_caps VALUES (?, ?)'),
      maxSeq: db.prepare('SELECT max(seq) FROM pep_items').pluck(),
    };
    this.seq = (this.s.maxSeq.get() as number | null) ?? 0;
  }

  getNode(owner: string, node: string): NodeConfig | undefined {
    this.m.sync();
    const c = this.s.node.get(owner, node) as string | undefined;
    return c === undefined ? undefined : JSON.parse(c) as NodeConfig;
  }

  nodes(owner: string): { node: string; config: NodeConfig }[] {
    this.m.sync();
    return (this.s.nodes.all(owner) as { node: string; config: string }[]).map((r) => ({ node: r.node, config: JSON.parse(r.config) as NodeConfig }));
  }

  countNodes(owner: string): number {
    this.m.sync();
    return this.s.countNodes.get(owner) as number;
  }

  /** Creates or reconfigures a node; trims its items to the (new) limit. */
  putNode(owner: string, node: string, config: NodeConfig, keep: number): Promise<void> {
    return this.m.write(() => {
      this.s.putNode.run(owner, node, JSON.stringify(config));
      this.s.trim.run(owner, node, owner, node, keep);
    });
  }

  deleteNode(owner: string, node: string): Promise<void> {
    return this.m.write(() => { this.s.delNode.run(owner, node); this.s.delNodeItems.run(owner, node); });
  }

  purge(owner: string, node: string): Promise<void> {
    return this.m.write(() => { this.s.delNodeItems.run(owner, node); });
  }

  /** Stores an item as the newest (replacing one with the same id) and keeps the newest `keep`. */
  publish(owner: string, node: string, id: string, payload: string, keep: number): Promise<void> {
    const seq = ++this.seq;
    return this.m.write(() => {
      this.s.putItem.run(owner, node, id, seq, payload);
      this.s.trim.run(owner, node, owner, node, keep);
    });
  }

  retract(owner: string, node: string, id: string): Promise<void> {
    return this.m.write(() => { this.s.delItem.run(owner, node, id); });
  }

  item(owner: string, node: string, id: string): StoredItem | undefined {
    this.m.sync();
    return this.s.item.get(owner, node, id) as StoredItem | undefined;
  }

  /** The newest `max` items, oldest first. */
  latest(owner: string, node: string, max: number): StoredItem[] {
    this.m.sync();
    return (this.s.latest.all(owner, node, max) as StoredItem[]).reverse();
  }

  deleteUser(owner: string): Promise<void> {
    return this.m.write(() => { this.s.delUserNodes.run(owner); this.s.delUserItems.run(owner); });
  }

  caps(ver: string): string[] | undefined {
    this.m.sync();
    const f = this.s.caps.get(ver) as string | undefined;
    return f === undefined ? undefined : JSON.parse(f) as string[];
  }

  putCaps(ver: string, features: string[]): Promise<void> {
    return this.m.write(() => { this.s.putCaps.run(ver, JSON.stringify(features)); });
  }
}
