export { type AdaBeliefConfig, AdaBeliefOptimizer, adaBelief, registerAdaBelief } from './adabelief.js';
export {
  cosineDecay,
  type EpochCallbacks,
  getLearningRate,
  learningRateScheduler,
  ReduceOnPlateau,
  type ReduceOnPlateauOptions,
  reduceLearningRateOnPlateau,
  type Schedule,
  setLearningRate,
  stepDecay,
} from './schedules.js';
