"""JavaScript files the peers benchmark writes into its temporary folder.

Kept apart from peers.py so the driver stays readable. Each is tiny on purpose:
the benchmark measures the supervisors, not the workers.
"""

# A node hello worker: answers `hello <pid>` on $PORT. pm2 runs it in cluster
# mode, so its workers share the port through node's cluster module.
HELLO_JS = r"""
'use strict'
const http = require('http')
const body = 'hello ' + process.pid
http.createServer((req, res) => { res.end(body) })
  .listen(+process.env.PORT || 0, '127.0.0.1')
"""

# The same worker written for the original infant (npm `infant`): its start
# callback is what makes the master's `start` callback fire (enhanced mode).
INFANT_WORKER_JS = r"""
'use strict'
const http = require('http')
const infant = require(process.env.INFANT_MODULE)
const body = 'hello ' + process.pid
const server = http.createServer((req, res) => { res.end(body) })
infant.worker(server, 'bench-worker',
  (done) => server.listen(+process.env.PORT || 0, '127.0.0.1', done),
  (done) => { server.close(); done() })
"""

# The infant master. argv: worker file, count. It prints one JSON line per
# event on stdout: `ready` when the start callback fires (ms from the
# `start` call), `restarted` after SIGUSR2 → `restart` (ms). SIGTERM stops the
# cluster and exits.
INFANT_MASTER_JS = r"""
'use strict'
const infant = require(process.env.INFANT_MODULE)
const file = process.argv[2]
const count = +process.argv[3]
const cluster = infant.cluster(file, {
  enhanced: true, count: count, respawnDelay: 0, stopTimeout: 5000,
  env: { PORT: process.env.PORT || '0', INFANT_MODULE: process.env.INFANT_MODULE },
})
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6
const t0 = process.hrtime.bigint()
cluster.start((err) => {
  if (err) { say({ event: 'error', error: String(err) }); process.exit(1) }
  say({ event: 'ready', ms: ms(t0) })
})
process.on('SIGUSR2', () => {
  const t1 = process.hrtime.bigint()
  cluster.restart((err) => say({ event: 'restarted', ms: ms(t1), error: err ? String(err) : null }))
})
process.on('SIGTERM', () => {
  cluster.stop(() => process.exit(0))
  setTimeout(() => process.exit(0), 6000).unref()
})
"""

# Drives pm2 through its programmatic API over one connection, so the timing
# does not include a node CLI boot per poll. argv: command, then its arguments.
#   start NAME SCRIPT N : start N cluster instances, poll until all `online`,
#                         print {"ms": ..., "pids": [...]}
PM2_DRIVER_JS = r"""
'use strict'
const pm2 = require(process.env.PM2_MODULE)
const [cmd, name, script, n] = process.argv.slice(2)
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6
const fail = (e) => { console.error(String(e && e.stack || e)); pm2.disconnect(); process.exit(1) }
pm2.connect((err) => {
  if (err) fail(err)
  if (cmd !== 'start') fail('unknown command ' + cmd)
  const count = +n
  const t0 = process.hrtime.bigint()
  pm2.start({ script, name, instances: count, exec_mode: 'cluster', restart_delay: 0,
              autorestart: true, env: { PORT: process.env.PORT || '0' } }, (err) => {
    if (err) fail(err)
    const poll = () => pm2.describe(name, (err, list) => {
      if (err) fail(err)
      const online = list.filter((p) => p.pm2_env.status === 'online')
      if (online.length >= count) {
        process.stdout.write(JSON.stringify({ ms: ms(t0), pids: online.map((p) => p.pid) }) + '\n')
        pm2.disconnect()
        return
      }
      if (ms(t0) > 120000) fail('timeout: ' + online.length + '/' + count + ' online')
      setTimeout(poll, 5)
    })
    poll()
  })
})
"""
