# -*- mode: ruby -*-
# The providers' settings, shared by the lab's Vagrantfiles (single, compare, server-agent load
# it with require_relative): VM size for VirtualBox and libvirt, and the one override that
# `make lab-test` needs on a machine without hardware virtualization.
#
#   LAB_LIBVIRT_DRIVER  unset (users): vagrant-libvirt's own default driver (kvm), CPU model
#                       untouched. "qemu" (make lab-test, tests/lab/test_lab.py): the domain runs
#                       under QEMU's TCG with a named CPU model (host-model needs KVM): Nehalem,
#                       x86-64-v2, because the numpy/pyarrow wheels need SSE4.2 (qemu64 gave
#                       "Illegal instruction"). Any other value only sets the driver.
# tests/unit/test_lab_scripts.py evaluates every Vagrantfile with and without it and checks
# that users get exactly cpus + memory and nothing else.
module K3sprofLab
  LIBVIRT_DRIVER = ENV.fetch("LAB_LIBVIRT_DRIVER", "")

  # providers(vm_config, cpus:, memory:): size the VM for both providers. vm_config is
  # `config` or a machine's `m` inside `config.vm.define`.
  def self.providers(vm_config, cpus:, memory:)
    vm_config.vm.provider "virtualbox" do |vb|
      vb.cpus = cpus
      vb.memory = memory
    end
    vm_config.vm.provider "libvirt" do |lv|
      libvirt(lv, cpus: cpus, memory: memory)
    end
  end

  def self.libvirt(lv, cpus:, memory:, driver: LIBVIRT_DRIVER)
    lv.cpus = cpus
    lv.memory = memory
    return if driver.empty?

    lv.driver = driver
    return unless driver == "qemu"

    lv.cpu_mode = "custom"
    lv.cpu_model = "Nehalem"  # x86-64-v2: the numpy/pyarrow wheels need SSE4.2
  end
end
