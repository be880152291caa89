import { egressScenario } from './egress-scenario.ts';

egressScenario('nginx');
