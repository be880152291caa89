// ESLint with typescript-eslint, and the import rules that keep the architecture honest:
// the pure stages (api, pki, model, status, render, translate) import no I/O and nothing
// above them, so decoding, translating and rendering stay testable with plain inputs.
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
const layers = {
  api: ['pki', 'model', 'status', 'render', 'translate', 'runner', 'k8s', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  pki: ['model', 'status', 'render', 'translate', 'runner', 'k8s', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  model: ['status', 'render', 'translate', 'runner', 'k8s', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  status: ['model', 'render', 'translate', 'runner', 'k8s', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  render: ['status', 'translate', 'runner', 'k8s', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  translate: ['render', 'runner', 'k8s', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  runner: ['pki', 'model', 'status', 'render', 'translate', 'k8s', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
  k8s: ['pki', 'model', 'status', 'render', 'translate', 'controller', 'proxy', 'manifests', 'schema', 'commands', 'server', 'metrics'],
};
const pureLayers = ['api', 'pki', 'model', 'status', 'render', 'translate'];

function layerRules(layer, forbidden) {
  const patterns = forbidden.map((folder) => ({
    group: [`../${folder}/*`, `../../${folder}/*`],
    message: `src/${layer} may not import src/${folder}: move what both need down a layer (api/ or errors.ts) instead.`,
  }));
  patterns.push({ group: ['../commands/*', '../cli.ts', '../config.ts', '../log.ts'], message: `src/${layer} must not import the command layer.` });
  const paths = pureLayers.includes(layer)
    ? [
        ...ioModules.map((name) => ({ name, message: `src/${layer} is pure: do I/O in a controller, a command or k8s/, and pass the result in.` })),
        // isIP and BlockList are pure data; sockets are not.
        { name: 'node:net', allowImportNames: ['isIP', 'BlockList'], message: `src/${layer} is pure: only isIP and BlockList from node:net.` },
      ]
    : [];
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { paths, patterns }] },
  };
}

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
  {
    files: ['eslint.config.js'],
    languageOptions: { parserOptions: { projectService: false } },
    ...tseslint.configs.disableTypeChecked,
  },
  prettier,
);
