// Property tests draw from fixed seeds so a CI run is reproducible; NEXGRAD_FC_SEED explores
// other draws (a failure prints its seed and path; keep it as a regression case).
import fc from 'fast-check';

fc.configureGlobal({ seed: Number(process.env.NEXGRAD_FC_SEED ?? 20261203) });
