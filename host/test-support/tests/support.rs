//! The test host itself: the SDK's executor calls reach the real executor, and a test
//! reads a tensor's type and shape without copying it.

use labelhost_plugin_api::{
    abi::DType,
    ops::{Float, NormalizeResize},
};
use labelhost_test_support::TestHost;

#[test]
fn describe_reads_a_tensor_s_type_and_shape_from_the_host() {
    let host = TestHost::new().expect("host");
    let dir = host.scratch().expect("scratch");
    let plugin = host.plugin_host("probe", &dir).expect("plugin host");
    let exec = plugin.executor();
    let voxels: Vec<u8> = (0..4 * 5 * 6).map(|i| (i % 251) as u8).collect();
    let t = exec
        .tensor(DType::U8, &[4, 5, 6], voxels, "cpu")
        .expect("upload");
    assert_eq!(t.describe().expect("describe"), (DType::U8, vec![4, 5, 6]));

    let f = exec
        .tensor_f32(&[1, 6, 6, 6], &[1.0; 216], "cpu")
        .expect("f32");
    let op = NormalizeResize {
        size: [3, 4, 5],
        dtype: Float::Bfloat16,
        ..Default::default()
    };
    let resized = exec.run1(&op, &f).expect("normalize_resize");
    assert_eq!(resized.dtype().expect("dtype"), DType::BF16);
    assert_eq!(resized.shape().expect("shape"), [1, 3, 4, 5]);
    let copied = resized.to_data().expect("copy");
    assert_eq!(copied.dtype, DType::BF16);
    assert_eq!(copied.bytes.len(), 60 * 2);
}
