/**
 * Builds the client bundle and the demo pages into the server's static folder (committed, so
 * `make run` needs no npm):
 *
 *   server/static/livecart.js       the library (ESM, yjs and y-websocket included)
 *   server/static/<page>.js         one script per demo page, importing ./livecart.js
 *   server/static/style.css         the pages' stylesheet
 *   server/static/<page>.html       the page shells that server/pages.py serves
 *   server/static/api-docs/         the API docs page (/api/docs): swagger-ui-dist, pinned, no CDN
 *
 *   node build.mjs                  build into server/static
 *   node build.mjs --outdir DIR     build elsewhere
 *   node build.mjs --check          build into a temp dir; fail if server/static differs
 */
import * as esbuild from 'esbuild'
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const STATIC = resolve(here, '../../server/static')
const LIBRARY = resolve(here, 'src/index.js')

/** The demo pages: file name, title, script. Routes are in server/pages.py. */
export const PAGES = [
  { name: 'storefront', title: 'Shop' },
  { name: 'cart', title: 'Your cart' },
  { name: 'assistant', title: 'Shop assistant' },
  { name: 'call-centre', title: 'Call centre', script: 'callcentre' },
  { name: 'kiosk', title: 'Kiosk' },
  { name: 'admin', title: 'Shop floor' }
]

const FAVICON = 'data:image/svg+xml,' + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#1f3d36"/>' +
  '<path d="M9 11h14l-1.6 9.2a2 2 0 0 1-2 1.8h-6.8a2 2 0 0 1-2-1.8z" fill="none" stroke="#f6efe4" stroke-width="2.2" stroke-linejoin="round"/>' +
  '<path d="M12.5 11a3.5 3.5 0 0 1 7 0" fill="none" stroke="#f6efe4" stroke-width="2.2"/></svg>')

/** The HTML shell of one page: everything visible is rendered by its script. */
function shell ({ name, title, script = name }) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="theme-color" content="#1f3d36">
<title>${title} · livecart</title>
<link rel="icon" href="${FAVICON}">
<link rel="stylesheet" href="/static/style.css">
<script type="module" src="/static/${script}.js"></script>
</head>
<body class="page-${name}">
<noscript><p class="noscript">This shop needs JavaScript to show live stock and carts.</p></noscript>
<div id="app" aria-live="polite"></div>
</body>
</html>
`
}

/** Page scripts import the library from src/; in the bundle that is the shared ./livecart.js. */
const libraryAsExternal = {
  name: 'livecart-external',
  setup (build) {
    build.onResolve({ filter: /(^|\/)src\/index\.js$/ }, (args) => {
      if (resolve(args.resolveDir, args.path) !== LIBRARY) return undefined
      return { path: './livecart.js', external: true }
    })
  }
}

const common = {
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome90', 'firefox90', 'safari14'],
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  write: false
}

const SWAGGER = resolve(here, 'node_modules/swagger-ui-dist')

/** The API docs page: Swagger UI rendering the server's own /api/openapi.json (server/apidocs.py serves it). */
const API_DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API · livecart</title>
<link rel="icon" href="${FAVICON}">
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#swagger-ui', deepLinking: true, tryItOutEnabled: false })
</script>
</body>
</html>
`

/** Swagger UI's files as the page loads them (their source-map comments dropped: the maps are not shipped). */
async function apiDocs () {
  const strip = (text) => Buffer.from(text.replace(/\n?\/[/*]# sourceMappingURL=\S+?(\*\/)?\s*$/, '\n'))
  return {
    'api-docs/index.html': Buffer.from(API_DOCS_PAGE),
    'api-docs/swagger-ui-bundle.js': strip(await readFile(join(SWAGGER, 'swagger-ui-bundle.js'), 'utf8')),
    'api-docs/swagger-ui.css': strip(await readFile(join(SWAGGER, 'swagger-ui.css'), 'utf8')),
    'api-docs/LICENSE': await readFile(join(SWAGGER, 'LICENSE'))
  }
}

/** Builds everything; returns {relativePath: contents}. */
export async function buildAll () {
  const files = {}
  const collect = (result, outdir) => {
    for (const f of result.outputFiles) files[relative(outdir, f.path)] = Buffer.from(f.contents)
  }
  const out = '/virtual-out'
  collect(await esbuild.build({ ...common, entryPoints: { livecart: LIBRARY }, outdir: out }), out)
  const entries = Object.fromEntries(PAGES.map((p) => [p.script || p.name, resolve(here, `pages/${p.script || p.name}.js`)]))
  collect(await esbuild.build({ ...common, entryPoints: entries, outdir: out, plugins: [libraryAsExternal] }), out)
  collect(await esbuild.build({ ...common, entryPoints: { style: resolve(here, 'pages/style.css') }, outdir: out }), out)
  for (const page of PAGES) files[`${page.name}.html`] = Buffer.from(shell(page))
  Object.assign(files, await apiDocs())
  return files
}

async function listFiles (dir, base = dir) {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return []
  }
  const out = []
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await listFiles(p, base))
    else out.push(relative(base, p))
  }
  return out.sort()
}

async function writeAll (files, outdir) {
  // Stale files go (a renamed page must not linger); nothing but files is ever removed.
  for (const f of await listFiles(outdir)) if (!(f in files)) await rm(join(outdir, f))
  for (const [name, contents] of Object.entries(files)) {
    const path = join(outdir, name)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, contents)
  }
}

async function main () {
  const args = process.argv.slice(2)
  const files = await buildAll()
  if (args.includes('--check')) {
    const tmp = await mkdtemp(join(tmpdir(), 'livecart-bundle-'))
    try {
      await writeAll(files, tmp)
      const built = await listFiles(tmp)
      const committed = await listFiles(STATIC)
      const problems = []
      for (const f of built) {
        if (!committed.includes(f)) problems.push(`missing: server/static/${f}`)
        else if (!(await readFile(join(tmp, f))).equals(await readFile(join(STATIC, f)))) problems.push(`out of date: server/static/${f}`)
      }
      for (const f of committed) if (!built.includes(f)) problems.push(`not built from sources: server/static/${f}`)
      if (problems.length) {
        console.error(problems.join('\n'))
        console.error('The committed bundle differs from its sources: run `npm run build` in clients/js and commit server/static.')
        process.exit(1)
      }
      console.log(`server/static is up to date (${built.length} files)`)
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
    return
  }
  const i = args.indexOf('--outdir')
  const outdir = i >= 0 ? resolve(args[i + 1]) : STATIC
  await writeAll(files, outdir)
  const sizes = Object.entries(files).map(([n, c]) => `  ${n.padEnd(18)} ${(c.length / 1024).toFixed(1).padStart(6)} KiB`)
  console.log(`built ${Object.keys(files).length} files into ${relative(process.cwd(), outdir) || '.'}\n${sizes.join('\n')}`)
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
