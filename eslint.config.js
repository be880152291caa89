// ESLint with typescript-eslint, and the import rules that keep the architecture honest:
// the pure stages (api, pki, model, status, render, translate, the contract, and the pure
// half of each data plane) import no I/O and nothing above them, and hold no module state,
// so decoding, translating and rendering stay testable with plain inputs. The controller
// reaches a data plane only through its driver (src/dataplane/registry.ts, driver.ts),
// and the controller-to-agent contract (src/contract/) knows no renderer and no plane.
// Formatting is Prettier's (eslint-config-prettier turns off the rules it owns).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

/** Modules that talk to the outside world: network, disk, processes, the Kubernetes API, logs, metrics. */
const ioModules = [
  'node:fs',
  'node:fs/promises',
  'node:dns',
  'node:dns/promises',
  'node:http',
  'node:https',
  'node:child_process',
  'node:readline',
  'undici',
  '@kubernetes/client-node',
  'pino',
  'prom-client',
];

/** The layers, lowest first, and the folders each one may not import from. */
const above = ['controller', 'proxy', 'dataplane', 'manifests', 'schema', 'commands', 'server', 'metrics', 'inputs'];
const layers = {
  api: ['pki', 'model', 'status', 'render', 'translate', 'runner', 'k8s', 'contract', ...above],
  pki: ['model', 'status', 'render', 'translate', 'runner', 'k8s', 'contract', ...above],
  model: ['status', 'render', 'translate', 'runner', 'k8s', 'contract', ...above],
  status: ['model', 'render', 'translate', 'runner', 'k8s', 'contract', ...above],
  // What the proxy objects carry: files, bindings and digests; it knows no renderer and no plane.
  contract: ['pki', 'model', 'status', 'render', 'translate', 'runner', 'k8s', ...above],
  // The renderers' shared vocabulary (render/files.ts); each plane's renderer lives in dataplane/.
  render: ['status', 'translate', 'runner', 'k8s', ...above],
  translate: ['render', 'runner', 'k8s', 'contract', ...above],
  runner: ['pki', 'model', 'status', 'render', 'translate', 'k8s', 'contract', ...above],
  k8s: ['pki', 'model', 'status', 'render', 'translate', 'contract', ...above],
  // The gatherer: Secrets, decoded identities, DNS answers and ports; below every controller and command.
  inputs: ['render', 'contract', 'controller', 'proxy', 'dataplane', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  // The agent's generic parts: each plane's driver sits above them and is handed in.
  proxy: ['pki', 'model', 'status', 'translate', 'controller', 'dataplane', 'manifests', 'schema', 'commands', 'server', 'inputs'],
  // Each data plane: the agent's generic parts (proxy/) below it, the controller and commands above.
  dataplane: ['pki', 'status', 'translate', 'k8s', 'controller', 'manifests', 'schema', 'commands', 'server', 'metrics', 'inputs'],
};
const pureLayers = ['api', 'pki', 'model', 'status', 'render', 'translate', 'contract'];
/** The pure half of the data planes: what they reserve, render, assemble, plan and parse; their drivers, processes and runtime clients do I/O. */
const pureDataPlaneFiles = ['src/dataplane/*.ts', 'src/dataplane/*/{paths,render,assemble,server,plan,state,threads}.ts'];

/** A plane's own folder (src/dataplane/<plane>/) is its driver's business: everything outside src/dataplane asks the registry. */
function planInternals(who) {
  return {
    group: ['../dataplane/*/*', '../../dataplane/*/*', './dataplane/*/*'],
    message: `${who} reaches a data plane through its driver: import src/dataplane/registry.ts or driver.ts, never a plane's own files.`,
  };
}

function layerRules(layer, forbidden, { files = [`src/${layer}/**/*.ts`], pure = pureLayers.includes(layer) } = {}) {
  const patterns = forbidden.map((folder) => ({
    group: [`../${folder}/*`, `../../${folder}/*`],
    message: `src/${layer} may not import src/${folder}: move what both need down a layer (api/ or errors.ts) instead.`,
  }));
  patterns.push({
    group: ['../commands/*', '../cli.ts', '../config.ts', '../../commands/*', '../../cli.ts', '../../config.ts'],
    message: `src/${layer} must not import the command layer.`,
  });
  if (layer !== 'dataplane') patterns.push(planInternals(`src/${layer}`));
  // The logger's type is the one thing the agent's parts and a plane's process driver take from above.
  if (layer !== 'dataplane' && layer !== 'proxy') patterns.push({ group: ['../log.ts'], message: `src/${layer} must not import the logger.` });
  // Where the proxy connects is decided in the controller, which resolves and checks every
  // address: the agent and its data planes are handed addresses and never resolve a name.
  const unresolving =
    (layer === 'dataplane' || layer === 'proxy') && !pure
      ? ['node:dns', 'node:dns/promises', 'dns', 'dns/promises'].map((name) => ({
          name,
          message: `src/${layer} resolves no name: the controller resolves hosts, checks every address against the destination policy, and hands the proxy addresses.`,
        }))
      : [];
  const paths = pure
    ? [
        ...ioModules.map((name) => ({ name, message: `src/${layer} is pure: do I/O in a controller, a command or k8s/, and pass the result in.` })),
        // isIP and BlockList are pure data; sockets are not.
        { name: 'node:net', allowImportNames: ['isIP', 'BlockList'], message: `src/${layer} is pure: only isIP and BlockList from node:net.` },
      ]
    : unresolving;
  return { files, rules: { 'no-restricted-imports': ['error', { paths, patterns }] } };
}

/**
 * Module state in a pure module: a top-level `let`, or a top-level Map, Set, WeakMap or
 * WeakSet not typed Readonly (a constant table is; a cache is not). A cache becomes an
 * argument, or an object its caller owns (dataplane/haproxy/assemble.ts, HaproxyAssemblyCache).
 */
const stateMessage = 'A pure module holds no state: pass a cache in, or let its caller own one.';
const moduleState = ['Program >', 'Program > ExportNamedDeclaration >'].flatMap((parent) => [
  { selector: `${parent} VariableDeclaration[kind=/^(let|var)$/]`, message: stateMessage },
  {
    selector: `${parent} VariableDeclaration > VariableDeclarator:not([id.typeAnnotation.typeAnnotation.typeName.name=/^Readonly/]) > NewExpression.init[callee.name=/^(Map|Set|WeakMap|WeakSet)$/]`,
    message: stateMessage,
  },
]);

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.cluster/', '.bench/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits hides its rejection: the bugs these find are real in a controller.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test registers these; the runner awaits them.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      eqeqeq: ['error', 'always'],
      'no-console': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      // The product logs through pino, with redaction; a stray console.log could print a Secret.
      'no-console': 'error',
    },
  },
  ...Object.entries(layers).map(([layer, forbidden]) => layerRules(layer, forbidden)),
  layerRules('dataplane', layers.dataplane, { files: pureDataPlaneFiles, pure: true }),
  {
    // The folders that are no layer above: each reaches a data plane through the registry alone.
    files: [
      'src/controller/**/*.ts',
      'src/commands/**/*.ts',
      'src/manifests/**/*.ts',
      'src/server/**/*.ts',
      'src/metrics/**/*.ts',
      'src/schema/**/*.ts',
      'src/*.ts',
    ],
    rules: { 'no-restricted-imports': ['error', { patterns: [planInternals('code outside src/dataplane')] }] },
  },
  {
    files: [...pureLayers.map((layer) => `src/${layer}/**/*.ts`), ...pureDataPlaneFiles],
    rules: { 'no-restricted-syntax': ['error', ...moduleState] },
  },
  {
    // Module state that is there today, each for a reason; the list should only shrink.
    files: [
      // The decoding box: one worker pool per process, and its task ids.
      'src/pki/sandbox/decode-pool.ts',
      // A constant table, unpacked on first use.
      'src/pki/cast5-sboxes.ts',
    ],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    files: ['eslint.config.js'],
    languageOptions: { parserOptions: { projectService: false } },
    ...tseslint.configs.disableTypeChecked,
  },
  prettier,
);
