// The bytes Loro keeps for a run of counter increments, the figure the
// bench's "1M counter increments stored" target is measured against.
//
// n increments of one counter (default 1,000,000), committed every op and
// every 1,000 ops; prints, per commit size, the size of Loro's snapshot
// (what an app stores) and of its update export (what it sends), as JSON
// lines. Not part of the build or the tests:
//
//   cd bench/peers && npm install --no-save loro-crdt@1 && node loro_counter_bytes.mjs
import { LoroCounter, LoroDoc } from "loro-crdt";

const n = Number(process.argv[2] || 1000000);
for (const perCommit of [1, 1000]) {
  const doc = new LoroDoc();
  doc.setPeerId(1n);
  const counter = doc.getMap("bench").setContainer("n", new LoroCounter());
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    counter.increment(1);
    if ((i + 1) % perCommit === 0) {
      doc.commit();
    }
  }
  doc.commit();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    JSON.stringify({
      ops: n,
      ops_per_commit: perCommit,
      value: counter.value,
      snapshot_bytes: doc.export({ mode: "snapshot" }).length,
      update_bytes: doc.export({ mode: "update" }).length,
      seconds,
    }),
  );
}
