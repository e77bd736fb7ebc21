// The data layer: IDX files (the MNIST format), the MNIST dataset and a
// batching loader over any dataset (dataset.hpp), with transforms of the
// inputs (transforms.hpp).
//
//   namespace ds = tg::data::datasets;
//   namespace T = tg::data::transforms;
//   ds::MNIST train(tg::data::default_fashion_mnist_dir(), /*train=*/true);  // pixels in [0, 1]
//   ds::MapDataset augmented(train, T::Compose(T::RandomCrop(28, 2, /*seed=*/1),
//                                              T::Normalize({0.2860}, {0.3530})));
//   tg::data::DataLoader loader(augmented, {/*batch_size=*/64, /*shuffle=*/true, /*seed=*/1,
//                                           /*drop_last=*/false, /*prefetch=*/true});
//   for (int epoch = 0; epoch < 3; ++epoch)
//     for (const tg::data::Batch& b : loader) {  // each range-for is a new epoch
//       // b.inputs (B, 1, 28, 28) float32, b.targets (B) int64
//     }
//
// The loader can also be driven by index, as before datasets existed:
//
//   tg::data::Dataset train = tg::data::load_mnist(dir, /*train=*/true);  // images and labels
//   tg::data::DataLoader loader(train, {64, true, 1});
//   loader.start_epoch();
//   for (std::size_t i = 0; i < loader.num_batches(); ++i) {
//     tg::data::Batch b = loader.batch(i);  // b.images (B, 1, 28, 28), b.labels (B)
//   }
//
// Errors: a file that cannot be read, is not a well-formed IDX file, or whose
// contents do not make a dataset throws DataError, with a message that starts
// with the file's path (or with "load_mnist:" when two files disagree). Bad
// arguments throw tg::ValueError or tg::ShapeError, as elsewhere in tapegrad.
#pragma once

#include "dataset.hpp"
#include "idx.hpp"
#include "loader.hpp"
#include "mnist.hpp"
#include "transforms.hpp"
